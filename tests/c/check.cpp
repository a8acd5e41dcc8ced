// check.cpp: tests/c/check.c's checks through wslink.hpp, the C++17 layer,
// so that its RAII handles and exceptions are what is exercised:
//
//   check_cpp --url ws://127.0.0.1:8080/ws --secret S --generation 2|1
//
// A wrong secret throws wslink::Error (WSLINK_ERR_AUTH, code -32000); JSON
// and binary go both ways; 100 publishes arrive in order and intact; an
// unknown method throws WSLINK_ERR_RPC with code -32601, an exception
// -32001; close ends the subscription. Prints "check.cpp: all checks
// passed" and exits 0, or names each failed check and exits 1.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "wslink.hpp"

namespace {

constexpr int kPublishes = 100;
constexpr std::size_t kPublishSize = 512;

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        std::cerr << "check.cpp: FAILED: " << what << "\n";
        ++failures;
    }
}

// The conformance service's bytes(size, seed).
std::vector<std::uint8_t> pattern(std::size_t size, unsigned seed) {
    std::vector<std::uint8_t> v(size);
    for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<std::uint8_t>((i * 31 + seed) % 251);
    return v;
}

// Runs `call`, which must throw wslink::Error; returns it (a default one,
// status WSLINK_OK, when nothing was thrown).
template <typename F>
wslink::Error thrown(F call) {
    try {
        call();
    } catch (const wslink::Error& e) {
        return e;
    }
    return wslink::Error(WSLINK_OK, "nothing thrown");
}

[[noreturn]] void usage() {
    std::cerr << "usage: check_cpp --url ws[s]://HOST:PORT/ws --secret S [--generation 2|1] [--ca PEM]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string url;
    wslink::Options options;
    if (argc % 2 == 0) usage();
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--url") url = value;
        else if (flag == "--secret") options.secret = value;
        else if (flag == "--ca") options.ca_file = value;
        else if (flag == "--generation") options.generation = value == "1" ? wslink::Generation::V1 : wslink::Generation::V2;
        else usage();
    }
    if (url.empty() || options.secret.empty()) usage();
    options.connect_timeout = std::chrono::seconds(10);
    options.call_timeout = std::chrono::seconds(20);

    try {
        wslink::Options wrong = options;
        wrong.secret = "not-the-secret";
        wslink::Error refused = thrown([&] { wslink::Connection::connect(url, wrong); });
        check(refused.status() == WSLINK_ERR_AUTH && refused.code() == -32000,
              std::string("wrong secret: ") + refused.status_name() + " code " + std::to_string(refused.code()) +
                  ": " + refused.what());
        std::cout << "wrong secret: " << refused.status_name() << ", code " << refused.code() << "\n";

        wslink::Connection conn = wslink::Connection::connect(url, options);
        check(conn.generation() == options.generation, "generation");

        // JSON both ways.
        check(conn.call("conformance.add", "[2, 3]").json() == "5", "add(2, 3)");
        check(conn.call("conformance.add", "[9007199254740993, 1]").json() == "9007199254740994", "add(2^53 + 1, 1)");
        wslink::Payload kw = conn.call_ex("conformance.kwargs", R"([1, "two"])", R"({"scale": 2.5})", {},
                                          std::chrono::milliseconds(0));
        check(kw.json() == R"({"args":[1,"two"],"kwargs":{"scale":2.5}})", "kwargs: " + std::string(kw.json()));

        // Binary both ways.
        std::vector<std::uint8_t> small = pattern(1000, 7), large = pattern(100000, 9);
        wslink::Payload echo =
            conn.call("conformance.echo", R"([{"a": {"$binary": 0}, "b": [1, {"$binary": 1}]}])", {small, large});
        check(echo.json() == R"({"a":{"$binary":0},"b":[1,{"$binary":1}]})", "echo: " + std::string(echo.json()));
        check(echo.buffer_count() == 2 && echo.buffer(0).to_vector() == small && echo.buffer(1).to_vector() == large,
              "echo: the buffers came back different");
        wslink::Payload blob = conn.call("conformance.blob", "[300000, 5]");
        check(blob.json() == R"({"size":300000,"blob":{"$binary":0}})" && blob.buffer_count() == 1 &&
                  blob.buffer(0).to_vector() == pattern(300000, 5),
              "blob(300000, 5): " + std::string(blob.json()));
        std::vector<std::uint8_t> upload = pattern(200000, 3);
        unsigned long long sum = std::accumulate(upload.begin(), upload.end(), 0ULL);
        wslink::Payload digest = conn.call("conformance.digest", R"([{"$binary": 0}])", {upload});
        check(digest.json() == R"({"len":200000,"sum":)" + std::to_string(sum) + "}",
              "digest: " + std::string(digest.json()));

        // 100 publishes, in order. The state outlives `sub` (declared after
        // it), which unsubscribes as it goes out of scope.
        std::mutex mutex;
        std::condition_variable changed;
        std::vector<int> seqs;
        int intact = 0;
        bool ended = false;
        wslink::Subscription sub = conn.subscribe(
            "cpp.check",
            [&](const wslink::PayloadView& m) {
                std::lock_guard<std::mutex> lock(mutex);
                std::string_view json = m.json();
                auto at = json.find(R"("seq":)");
                int seq = at == std::string_view::npos ? -1 : std::atoi(std::string(json.substr(at + 6)).c_str());
                seqs.push_back(seq);
                if (seq >= 0 && json == R"({"seq":)" + std::to_string(seq) + R"(,"blob":{"$binary":0}})" &&
                    m.buffer_count() == 1 && m.buffer(0).to_vector() == pattern(kPublishSize, static_cast<unsigned>(seq))) {
                    ++intact;
                }
                changed.notify_all();
            },
            [&](const wslink::Error& why) {
                std::lock_guard<std::mutex> lock(mutex);
                ended = why.status() == WSLINK_ERR_CLOSED;
                changed.notify_all();
            });
        std::string args = R"(["cpp.check", )" + std::to_string(kPublishes) + ", " + std::to_string(kPublishSize) + "]";
        check(conn.call("conformance.publish", args).json() == std::to_string(kPublishes), "publish");
        {
            std::unique_lock<std::mutex> lock(mutex);
            changed.wait_for(lock, std::chrono::seconds(10), [&] { return seqs.size() >= kPublishes; });
            int in_order = 0;
            for (std::size_t i = 0; i < seqs.size(); ++i) {
                if (seqs[i] == static_cast<int>(i)) {
                    ++in_order;
                } else if (in_order == static_cast<int>(i)) {
                    std::cerr << "check.cpp: message " << i << " has sequence number " << seqs[i] << "\n";
                }
            }
            check(seqs.size() == kPublishes, "publishes: " + std::to_string(seqs.size()) + " received");
            check(in_order == kPublishes, "publishes: " + std::to_string(in_order) + " in order");
            check(intact == kPublishes, "publishes: " + std::to_string(intact) + " intact");
            std::cout << "publishes: " << seqs.size() << " received, " << in_order << " in order, " << intact
                      << " intact\n";
        }
        check(sub.dropped() == 0, "publishes: " + std::to_string(sub.dropped()) + " dropped");

        // Errors, as exceptions.
        wslink::Error unknown = thrown([&] { conn.call("conformance.no_such_method"); });
        check(unknown.status() == WSLINK_ERR_RPC && unknown.code() == -32601,
              std::string("unknown method: ") + unknown.status_name() + " code " + std::to_string(unknown.code()));
        std::cout << "unknown method: " << unknown.status_name() << ", code " << unknown.code() << ": "
                  << unknown.what() << "\n";
        wslink::Error failed = thrown([&] { conn.call("conformance.fail", R"(["on purpose"])"); });
        check(failed.status() == WSLINK_ERR_RPC && failed.code() == -32001 &&
                  failed.data().find("on purpose") != std::string::npos,
              std::string("exception: ") + failed.status_name() + " code " + std::to_string(failed.code()));
        check(conn.call("conformance.add", "[1, 1]").json() == "2", "add after errors");

        conn.close();
        {
            std::unique_lock<std::mutex> lock(mutex);
            changed.wait_for(lock, std::chrono::seconds(10), [&] { return ended; });
            check(ended, "close: the subscription's end was not reported");
        }
        check(!sub.callback_error(), "a callback threw");
    } catch (const wslink::Error& e) {
        std::cerr << "check.cpp: " << e.status_name() << ": " << e.what() << "\n";
        return 1;
    }

    if (failures) {
        std::cerr << "check.cpp: " << failures << " check(s) failed\n";
        return 1;
    }
    std::cout << "check.cpp: all checks passed\n";
    return 0;
}
