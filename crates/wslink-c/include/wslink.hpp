// wslink.hpp: a header-only C++17 layer over wslink.h (libwslink_c).
//
// Handles are RAII objects (Connection, Subscription, Payload): move-only,
// released by their destructors with the one C function that frees each.
// Failures throw wslink::Error, which carries the C status, the message and,
// for an error reply from the server, its code and data.
//
// Why exceptions rather than a std::expected-style result: C++17 has no
// std::expected (a home-made one is one more type to learn), a failed
// connect must leave no half-made object (a constructor can only throw),
// and a wslink call fails for reasons the caller rarely handles where it
// calls: the connection dropped, the server raised, a timeout. Code that
// wants to branch catches wslink::Error and reads status() or code().
//
//   wslink::Options options;
//   options.secret = "wslink-secret";
//   auto conn = wslink::Connection::connect("ws://127.0.0.1:8080/ws", options);
//   std::vector<std::uint8_t> pixels = {1, 2, 3};
//   wslink::Payload echo = conn.call("conformance.echo", R"([{"$binary": 0}])", {pixels});
//   // echo.json() == R"({"$binary":0})", echo.buffer(0) holds 1 2 3
//   auto sub = conn.subscribe("topic", [](const wslink::PayloadView& m) { /* wslink-callback thread */ });
//
// Values are JSON text plus buffers, as in wslink.h: {"$binary": N} in the
// JSON stands for buffer N, both ways. Threads are wslink.h's: calls block,
// each subscription's callback runs on its own "wslink-callback" thread.
// An exception thrown by a callback never reaches the C library (where it
// would abort the process): it is caught and kept, see
// Subscription::callback_error().

#ifndef WSLINK_HPP
#define WSLINK_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wslink.h"

namespace wslink {

/// A failure of the library: what the C function returned and said.
class Error : public std::runtime_error {
public:
    Error(wslink_status status, const std::string& message, std::int64_t code = 0, std::string data = {})
        : std::runtime_error(message), status_(status), code_(code), data_(std::move(data)) {}

    /// The C status (WSLINK_ERR_RPC, WSLINK_ERR_TIMEOUT, ...).
    wslink_status status() const noexcept { return status_; }
    /// Its name, e.g. "WSLINK_ERR_TIMEOUT".
    const char* status_name() const noexcept { return wslink_status_name(static_cast<int32_t>(status_)); }
    /// The server's error code (WSLINK_ERR_RPC: -32601 unknown method,
    /// -32001 exception; WSLINK_ERR_AUTH: -32000), else 0.
    std::int64_t code() const noexcept { return code_; }
    /// The server's error data as JSON (for an exception:
    /// {"method", "exception", "trace"}), or empty.
    const std::string& data() const noexcept { return data_; }

    /// This thread's last error, as an exception.
    static Error last() {
        const char* data = wslink_last_error_data();
        return Error(wslink_last_error_status(), wslink_last_error_message(), wslink_last_error_code(),
                     data ? std::string(data) : std::string());
    }

private:
    wslink_status status_;
    std::int64_t code_;
    std::string data_;
};

namespace detail {
inline void check(wslink_status status) {
    if (status != WSLINK_OK) throw Error::last();
}
}  // namespace detail

/// A run of bytes, not owned (C++17 has no std::span). Converts from the
/// usual byte containers, so call arguments can be written {vector, ...}.
struct Bytes {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;

    Bytes() = default;
    Bytes(const std::uint8_t* d, std::size_t n) : data(d), size(n) {}
    Bytes(const std::vector<std::uint8_t>& v) : data(v.data()), size(v.size()) {}  // NOLINT: implicit on purpose
    Bytes(std::string_view s) : data(reinterpret_cast<const std::uint8_t*>(s.data())), size(s.size()) {}  // NOLINT

    const std::uint8_t* begin() const noexcept { return data; }
    const std::uint8_t* end() const noexcept { return data + size; }
    std::uint8_t operator[](std::size_t i) const { return data[i]; }
    std::vector<std::uint8_t> to_vector() const { return std::vector<std::uint8_t>(begin(), end()); }
};

/// A value as JSON plus buffers, not owned: what a subscription callback
/// receives (valid during the callback only), and the base of Payload.
class PayloadView {
public:
    explicit PayloadView(const wslink_payload* p) noexcept : p_(p) {}

    /// The JSON, binaries as {"$binary": N}.
    std::string_view json() const noexcept { return p_ ? std::string_view(p_->json, p_->json_len) : std::string_view(); }
    std::size_t buffer_count() const noexcept { return p_ ? p_->buffer_count : 0; }
    /// Buffer `i` (throws std::out_of_range past the end).
    Bytes buffer(std::size_t i) const {
        if (i >= buffer_count()) throw std::out_of_range("wslink::PayloadView::buffer: no buffer " + std::to_string(i));
        return Bytes(p_->buffers[i].data, p_->buffers[i].len);
    }
    const wslink_payload* c_payload() const noexcept { return p_; }

protected:
    const wslink_payload* p_;
};

/// A call's result: owns its JSON and buffers (wslink_payload_free).
class Payload : public PayloadView {
public:
    explicit Payload(wslink_payload* p) noexcept : PayloadView(p) {}
    Payload(const Payload&) = delete;
    Payload& operator=(const Payload&) = delete;
    Payload(Payload&& other) noexcept : PayloadView(std::exchange(other.p_, nullptr)) {}
    Payload& operator=(Payload&& other) noexcept {
        if (this != &other) {
            wslink_payload_free(const_cast<wslink_payload*>(p_));
            p_ = std::exchange(other.p_, nullptr);
        }
        return *this;
    }
    ~Payload() { wslink_payload_free(const_cast<wslink_payload*>(p_)); }
};

/// The wire generation.
enum class Generation : std::uint32_t { V2 = 2, V1 = 1 };

/// How to connect; zero values mean the library's defaults (wslink.h).
struct Options {
    std::string secret;  ///< empty: "wslink-secret"
    Generation generation = Generation::V2;
    std::chrono::milliseconds connect_timeout{0};
    std::chrono::milliseconds call_timeout{0};
    std::chrono::milliseconds launch_timeout{0};
    std::uint64_t max_message_size = 0;
    std::uint32_t max_pending_messages = 0;
    std::uint64_t max_pending_bytes = 0;
    std::uint32_t max_depth = 0;
    std::uint32_t subscription_buffer = 0;
    std::uint64_t subscription_buffer_bytes = 0;
    std::string ca_file;  ///< wss://: a PEM file trusted besides the public CAs; empty: none
    bool accept_invalid_certs = false;  ///< wss://: no certificate check at all (tests only)

    /// The C struct (its secret and ca_file point into this object).
    wslink_options to_c() const {
        wslink_options o{};
        o.secret = secret.empty() ? nullptr : secret.c_str();
        o.generation = static_cast<std::uint32_t>(generation);
        o.connect_timeout_ms = millis(connect_timeout);
        o.call_timeout_ms = millis(call_timeout);
        o.launch_timeout_ms = millis(launch_timeout);
        o.max_message_size = max_message_size;
        o.max_pending_messages = max_pending_messages;
        o.max_pending_bytes = max_pending_bytes;
        o.max_depth = max_depth;
        o.subscription_buffer = subscription_buffer;
        o.subscription_buffer_bytes = subscription_buffer_bytes;
        o.ca_file = ca_file.empty() ? nullptr : ca_file.c_str();
        o.accept_invalid_certs = accept_invalid_certs ? 1 : 0;
        return o;
    }

    /// A timeout in whole milliseconds, capped at WSLINK_WAIT_FOREVER
    /// (no limit); negative means the default.
    static std::uint32_t millis(std::chrono::milliseconds t) {
        if (t.count() <= 0) return 0;
        if (t.count() >= static_cast<std::int64_t>(WSLINK_WAIT_FOREVER)) return WSLINK_WAIT_FOREVER;
        return static_cast<std::uint32_t>(t.count());
    }
};

/// No time limit, for Connection::call_ex.
constexpr std::chrono::milliseconds wait_forever{static_cast<std::int64_t>(WSLINK_WAIT_FOREVER)};

namespace detail {
struct Handlers {
    std::function<void(const PayloadView&)> on_message;
    std::function<void(const Error&)> on_end;
    std::mutex mutex;
    std::exception_ptr error;

    void keep(std::exception_ptr e) noexcept {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::move(e);
    }
};

// The handlers whose callback this thread is running, if any.
inline const Handlers*& running() noexcept {
    thread_local const Handlers* current = nullptr;
    return current;
}

// The C callback: nothing may unwind out of it.
extern "C" inline void wslink_hpp_deliver(void* user_data, const wslink_payload* message) {
    auto* h = static_cast<Handlers*>(user_data);
    struct Running {
        explicit Running(const Handlers* h) noexcept { running() = h; }
        ~Running() { running() = nullptr; }
    } running_now(h);
    try {
        if (message) {
            h->on_message(PayloadView(message));
        } else if (h->on_end) {
            h->on_end(Error::last());
        }
    } catch (...) {
        h->keep(std::current_exception());
    }
}
}  // namespace detail

/// A subscription: its callback runs until this is destroyed or
/// unsubscribe() is called (both wait for a callback in progress, unless
/// called from it).
class Subscription {
public:
    Subscription() = default;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    Subscription(Subscription&& other) noexcept
        : s_(std::exchange(other.s_, nullptr)), handlers_(std::move(other.handlers_)) {}
    Subscription& operator=(Subscription&& other) noexcept {
        if (this != &other) {
            unsubscribe();
            s_ = std::exchange(other.s_, nullptr);
            handlers_ = std::move(other.handlers_);
        }
        return *this;
    }
    ~Subscription() { unsubscribe(); }

    /// Stops the callbacks; afterwards none runs (except the one calling this).
    void unsubscribe() noexcept {
        if (s_) wslink_unsubscribe(std::exchange(s_, nullptr));
        // Freed only once no callback can use them. When called from this
        // subscription's own callback, the C library lets that callback
        // finish: its handlers must outlive it (a small leak, once).
        if (handlers_ && detail::running() == handlers_.get()) {
            handlers_.release();
        } else {
            handlers_.reset();
        }
    }

    /// Messages dropped because the callback fell behind.
    std::uint64_t dropped() const noexcept { return wslink_subscription_dropped(s_); }

    /// The first exception a callback threw (caught so that it never
    /// unwinds into the C library), or null.
    std::exception_ptr callback_error() const {
        if (!handlers_) return nullptr;
        std::lock_guard<std::mutex> lock(handlers_->mutex);
        return handlers_->error;
    }

    explicit operator bool() const noexcept { return s_ != nullptr; }

private:
    friend class Connection;
    Subscription(wslink_subscription* s, std::unique_ptr<detail::Handlers> h) noexcept
        : s_(s), handlers_(std::move(h)) {}

    wslink_subscription* s_ = nullptr;
    std::unique_ptr<detail::Handlers> handlers_;
};

/// A connection. Calls block; any number of threads may call at once.
class Connection {
public:
    /// Connects and says hello (throws wslink::Error).
    static Connection connect(const std::string& url, const Options& options = {}) {
        wslink_options o = options.to_c();
        wslink_connection* c = nullptr;
        detail::check(wslink_connect(url.c_str(), &o, &c));
        return Connection(c);
    }

    /// Starts a session through a session manager (wslink's launcher):
    /// POSTs `request_json` ({"application": ...}) to `session_manager_url`
    /// and connects to the sessionURL it answers. `answer`, if given,
    /// receives the launcher's JSON answer.
    static Connection launch(const std::string& session_manager_url, const std::string& request_json,
                             const Options& options = {}, std::string* answer = nullptr) {
        wslink_options o = options.to_c();
        wslink_connection* c = nullptr;
        char* text = nullptr;
        detail::check(wslink_launch(session_manager_url.c_str(), request_json.c_str(), &o, &c, &text));
        std::unique_ptr<char, void (*)(char*)> owned(text, wslink_string_free);
        Connection conn(c);
        if (answer && owned) *answer = owned.get();
        return conn;
    }

    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    Connection(Connection&& other) noexcept : c_(std::exchange(other.c_, nullptr)) {}
    Connection& operator=(Connection&& other) noexcept {
        if (this != &other) {
            close();
            c_ = std::exchange(other.c_, nullptr);
        }
        return *this;
    }
    ~Connection() { close(); }

    /// method(*args): `args_json` is a JSON array in which {"$binary": N}
    /// stands for buffers[N].
    Payload call(const std::string& method, const std::string& args_json = "[]",
                 const std::vector<Bytes>& buffers = {}) const {
        return call_ex(method, args_json, std::string(), buffers, std::chrono::milliseconds(0));
    }

    /// method(*args, **kwargs) with its own timeout (0: the connection's;
    /// wslink::wait_forever: none). An empty `kwargs_json` means none.
    Payload call_ex(const std::string& method, const std::string& args_json, const std::string& kwargs_json,
                    const std::vector<Bytes>& buffers, std::chrono::milliseconds timeout) const {
        std::vector<wslink_buffer> c_buffers;
        c_buffers.reserve(buffers.size());
        for (const Bytes& b : buffers) c_buffers.push_back(wslink_buffer{b.data, b.size});
        wslink_payload* result = nullptr;
        detail::check(wslink_call_ex(c_, method.c_str(), args_json.empty() ? nullptr : args_json.c_str(),
                                     kwargs_json.empty() ? nullptr : kwargs_json.c_str(),
                                     c_buffers.empty() ? nullptr : c_buffers.data(), c_buffers.size(),
                                     Options::millis(timeout), &result));
        return Payload(result);
    }

    /// Calls `on_message` on the subscription's own thread for each message
    /// on `topic`, and `on_end` (if given) once when the subscription ends
    /// for good with why. Keep the returned object: destroying it
    /// unsubscribes.
    Subscription subscribe(const std::string& topic, std::function<void(const PayloadView&)> on_message,
                           std::function<void(const Error&)> on_end = {}) const {
        if (!on_message) throw Error(WSLINK_ERR_INVALID_ARGUMENT, "wslink::Connection::subscribe: no callback");
        auto handlers = std::make_unique<detail::Handlers>();
        handlers->on_message = std::move(on_message);
        handlers->on_end = std::move(on_end);
        wslink_subscription* s = nullptr;
        detail::check(wslink_subscribe(c_, topic.c_str(), detail::wslink_hpp_deliver, handlers.get(), &s));
        return Subscription(s, std::move(handlers));
    }

    /// The client id from the server's hello reply.
    std::string client_id() const {
        const char* id = wslink_connection_client_id(c_);
        return id ? std::string(id) : std::string();
    }
    Generation generation() const noexcept { return static_cast<Generation>(wslink_connection_generation(c_)); }
    bool is_closed() const noexcept { return wslink_connection_is_closed(c_); }

    /// Closes (calls in flight fail, subscriptions end). Idempotent; the
    /// destructor does it.
    void close() noexcept {
        if (c_) wslink_close(std::exchange(c_, nullptr));
    }

    wslink_connection* c_connection() const noexcept { return c_; }

private:
    explicit Connection(wslink_connection* c) noexcept : c_(c) {}
    wslink_connection* c_ = nullptr;
};

}  // namespace wslink

#endif  // WSLINK_HPP
