// A tour of the runtime API: every snippet of the README's "Using it" section, in one program
// that runs (so the README's examples keep compiling). Run: build/release/tour
#include <fmt/core.h>

#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include <athanor/athanor.h>

using namespace athanor;
using namespace athanor::literals;
using namespace std::chrono_literals;

struct hello { std::string name; };
struct quit {};
struct tick {};
struct port_is { std::uint16_t port; };

int main() {
  runtime rt(runtime_config{.schedulers = 2});

  spawn([](process& self) -> proc {
    // Processes and messages
    pid p = spawn([](process& s) -> proc {
      hello h = co_await s.receive<hello>();
      std::variant<int, quit> m = co_await s.receive<int, quit>();
      std::optional<int> v = co_await s.receive_for<int>(100ms);
      shared<std::vector<int>> big = co_await s.receive<shared<std::vector<int>>>();
      fmt::print("got {}, {}, {}, a shared vector of {}\n", h.name, m.index() == 0 ? std::get<int>(m) : -1,
                 v.value_or(-1), big->size());
      auto text = co_await s.receive(
          on<int>([](int x) { return x > 10; }, [](int x) { return fmt::format("big {}", x); }),
          on([](std::string& str) { return str; }),
          after(100ms, [] { return std::string("nothing"); }));
      fmt::print("selective receive: {}\n", text);
    });
    send(p, hello{"Alice"});
    send(p, 1);
    send(p, 2);
    send(p, share(std::vector<int>(1000, 7)));
    send(p, 42);
    fmt::print("self() = {}\n", athanor::self().to_string());

    // Links, monitors, exit signals
    self.trap_exit(true);
    pid worker = spawn_link([](process&) -> proc {
      exit("failed"_a);
      co_return;
    });
    exit_signal e = co_await self.receive<exit_signal>();
    fmt::print("{} exited: {}\n", e.from.to_string(), e.reason.to_string());
    (void)worker;
    auto [child, mref] = spawn_monitor([](process& s) -> proc { co_await s.receive<quit>(); });
    exit(child, atoms::kill);
    down d = co_await self.receive<down>();
    fmt::print("{} is down: {}\n", d.from.to_string(), d.reason.to_string());
    demonitor(mref, /*flush=*/true);

    // Names and timers
    pid logger = spawn([](process& s) -> proc {
      for (;;) {
        auto m = co_await s.receive<std::string, quit>();
        if (m.index() == 1) co_return;
        fmt::print("logger: {}\n", std::get<0>(m));
      }
    });
    register_name("logger"_a, logger);
    send("logger"_a, std::string("hello from a name"));
    timer_ref t = send_after(5s, self.self(), tick{});
    auto left = read_timer(t);
    bool cancelled = cancel_timer(t);
    fmt::print("timer: {} ms left, cancelled: {}\n", left.value_or(0ms).count(), cancelled);
    co_await self.sleep(10ms);
    co_await self.yield();
    for (int i = 0; i < 10000; ++i) co_await self.consume(1);

    // Blocking work off the schedulers
    auto size = co_await dirty_io([] { return std::filesystem::file_size("/proc/self/status") + 1; });
    auto sum = co_await dirty_cpu([] {
      std::vector<long> v(1'000'000, 1);
      return std::accumulate(v.begin(), v.end(), 0L);
    });
    fmt::print("dirty: {} {}\n", size > 0, sum);

    // Sockets
    pid me = self.self();
    spawn([me](process&) -> proc {
      tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
      send(me, port_is{l.port()});
      tcp_socket c = co_await l.accept();
      co_await c.write_all(std::string_view("hi from a socket"));
    });
    port_is port = co_await self.receive<port_is>();
    tcp_socket conn = co_await tcp_socket::connect("127.0.0.1", port.port);
    std::string buffer(64, '\0');
    std::size_t n = co_await conn.read(std::as_writable_bytes(std::span(buffer.data(), buffer.size())));
    fmt::print("socket: {}\n", buffer.substr(0, n));

    // Introspection and limits
    auto info = co_await process_info_async(logger);
    fmt::print("logger: {} messages queued, {} bytes, name {}\n", info->message_queue_len, info->memory_bytes,
               info->registered_name ? info->registered_name->to_string() : "none");
    system_info_t s = system_info();
    fmt::print("{} processes, {} schedulers\n", s.process_count, s.schedulers);
    pid hoarder = spawn(spawn_options{.max_heap_bytes = 1 << 16}, [](process& h) -> proc { co_await h.receive<quit>(); });
    ref m = monitor(hoarder);
    for (int i = 0; i < 100; ++i) send(hoarder, std::string(1000, 'x'));
    down over = co_await self.receive(on<down>([m](const down& x) { return x.monitor == m; }, [](down& x) { return x; }));
    fmt::print("hoarder: {}\n", over.reason.to_string());
    send("logger"_a, quit{});

    // Terms and the External Term Format
    term value = tuple("ok"_a, list({1, 2, 3}), map({{"name"_a, "Alice"}}));
    std::vector<std::byte> bytes = etf::encode(value);
    term back = etf::decode(bytes, {.safe = true});
    fmt::print("{} ({} bytes of ETF)\n", back, bytes.size());
  });
  rt.wait();
}
