// call.cpp: wslink.hpp (the C++17 layer) against the conformance service,
// the same checks as examples/c/call.c plus keyword arguments.
//
//   call_cpp --url ws://127.0.0.1:8080/ws [--secret S] [--generation 2|1]
//   call_cpp --launch http://127.0.0.1:9000/paraview/ --app conf [--generation 2|1]
//
// Build (from the repository root, after cargo build -p wslink-c):
//   c++ -std=c++17 -I crates/wslink-c/include crates/wslink-c/examples/cpp/call.cpp
//       -L target/debug -lwslink_c -pthread -o call_cpp

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "wslink.hpp"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        std::cerr << "call.cpp: FAILED: " << what << "\n";
        ++failures;
    }
}

// The conformance service's bytes(size, seed).
std::vector<std::uint8_t> pattern(std::size_t size, unsigned seed) {
    std::vector<std::uint8_t> v(size);
    for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<std::uint8_t>((i * 31 + seed) % 251);
    return v;
}

[[noreturn]] void usage() {
    std::cerr << "usage: call_cpp --url ws://HOST:PORT/ws [--secret S] [--generation 2|1]\n"
                 "       call_cpp --launch http://HOST:PORT/ENDPOINT --app NAME [--generation 2|1]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string url, launcher, app;
    wslink::Options options;
    for (int i = 1; i < argc; ++i) {
        if (i + 1 >= argc) usage();
        std::string flag = argv[i], value = argv[++i];
        if (flag == "--url") url = value;
        else if (flag == "--secret") options.secret = value;
        else if (flag == "--generation") options.generation = value == "1" ? wslink::Generation::V1 : wslink::Generation::V2;
        else if (flag == "--launch") launcher = value;
        else if (flag == "--app") app = value;
        else usage();
    }
    if (url.empty() == launcher.empty() || (!launcher.empty() && app.empty())) usage();
    options.connect_timeout = std::chrono::seconds(10);
    options.call_timeout = std::chrono::seconds(20);

    try {
        wslink::Connection conn = launcher.empty()
            ? wslink::Connection::connect(url, options)
            : [&] {
                  std::string answer;
                  auto c = wslink::Connection::launch(launcher, R"({"application": ")" + app + R"("})", options, &answer);
                  std::cout << "launched: " << answer << "\n";
                  return c;
              }();
        std::cout << "connected as " << conn.client_id() << " (wslink " << static_cast<int>(conn.generation()) << ".x)\n";

        check(conn.call("conformance.add", "[2, 3]").json() == "5", "add(2, 3)");

        // Keyword arguments, in their own JSON object.
        wslink::Payload kw = conn.call_ex("conformance.kwargs", "[1]", R"({"scale": 2.5})", {}, std::chrono::seconds(5));
        check(kw.json() == R"({"args":[1],"kwargs":{"scale":2.5}})", "kwargs: " + std::string(kw.json()));

        // A buffer out and back: {"$binary": 0} both ways.
        std::vector<std::uint8_t> pixels = pattern(1000, 7);
        wslink::Payload echo = conn.call("conformance.echo", R"([{"name": "pixels", "data": {"$binary": 0}}])", {pixels});
        check(echo.json() == R"({"name":"pixels","data":{"$binary":0}})", "echo JSON: " + std::string(echo.json()));
        check(echo.buffer_count() == 1 && echo.buffer(0).to_vector() == pixels, "echo bytes");
        std::cout << "echo: " << echo.json() << " + " << echo.buffer(0).size << " bytes\n";

        // Publishes, received on the subscription's thread.
        std::mutex mutex;
        std::condition_variable changed;
        int received = 0, good = 0;
        bool ended = false;
        wslink::Subscription sub = conn.subscribe(
            "cpp.example",
            [&](const wslink::PayloadView& m) {
                std::lock_guard<std::mutex> lock(mutex);
                std::string seq = "\"seq\":" + std::to_string(received);
                if (m.json().find(seq) != std::string_view::npos && m.buffer_count() == 1 &&
                    m.buffer(0).to_vector() == pattern(1000, static_cast<unsigned>(received))) {
                    ++good;
                }
                ++received;
                changed.notify_all();
            },
            [&](const wslink::Error& why) {
                std::lock_guard<std::mutex> lock(mutex);
                ended = why.status() == WSLINK_ERR_CLOSED;
                changed.notify_all();
            });
        check(conn.call("conformance.publish", R"(["cpp.example", 3, 1000])").json() == "3", "publish");
        {
            std::unique_lock<std::mutex> lock(mutex);
            changed.wait_for(lock, std::chrono::seconds(10), [&] { return received >= 3; });
            check(received == 3 && good == 3,
                  "publishes: " + std::to_string(received) + " received, " + std::to_string(good) + " as expected");
            std::cout << "received " << received << " publishes on cpp.example\n";
        }

        // An error reply as an exception.
        try {
            conn.call("conformance.fail", R"(["on purpose"])");
            check(false, "fail did not throw");
        } catch (const wslink::Error& e) {
            check(e.status() == WSLINK_ERR_RPC && e.code() == -32001, std::string("fail: ") + e.status_name());
            check(std::string(e.what()).find("on purpose") != std::string::npos, std::string("fail: ") + e.what());
            check(e.data().find("on purpose") != std::string::npos, "fail data: " + e.data());
            std::cout << "error reply: " << e.what() << " (" << e.status_name() << ", code " << e.code() << ")\n";
        }

        // A timeout is an exception too, and the connection goes on.
        try {
            conn.call_ex("conformance.sleep", "[2000]", "", {}, std::chrono::milliseconds(100));
            check(false, "sleep did not time out");
        } catch (const wslink::Error& e) {
            check(e.status() == WSLINK_ERR_TIMEOUT, std::string("sleep: ") + e.status_name());
        }
        check(conn.call("conformance.add", "[1, 1]").json() == "2", "a call after a timeout");

        conn.close();
        {
            std::unique_lock<std::mutex> lock(mutex);
            changed.wait_for(lock, std::chrono::seconds(10), [&] { return ended; });
            check(ended, "the subscription's end after close");
        }
        check(!sub.callback_error(), "a callback threw");
        // `sub` unsubscribes as it goes out of scope, before the state its
        // callbacks use.
    } catch (const wslink::Error& e) {
        std::cerr << "call.cpp: " << e.status_name() << ": " << e.what() << "\n";
        return 1;
    }

    if (failures) {
        std::cerr << "call.cpp: " << failures << " check(s) failed\n";
        return 1;
    }
    std::cout << "call.cpp: all checks passed\n";
    return 0;
}
