// TCP through the runtime's poller: a process waiting on a socket uses no thread.
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

namespace athanor::testing {
namespace {

struct port_is { std::uint16_t port; };

std::span<std::byte> bytes(std::string& s) { return std::as_writable_bytes(std::span(s.data(), s.size())); }

TEST_F(RuntimeTest, EchoOverLoopbackBetweenTwoProcesses) {
  outcome<std::string> got;
  run([&](process& self) -> proc {
    pid me = self.self();
    spawn([me](process& server) -> proc {
      tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
      send(me, port_is{l.port()});
      tcp_socket conn = co_await l.accept();
      std::string buf(64, '\0');
      for (;;) {
        std::size_t n = co_await conn.read(bytes(buf));
        if (n == 0) break;
        co_await conn.write_all(std::string_view(buf.data(), n));
      }
      (void)server;
    });
    port_is p = co_await self.receive<port_is>();
    tcp_socket c = co_await tcp_socket::connect("127.0.0.1", p.port);
    EXPECT_TRUE(c.is_open());
    EXPECT_GE(c.native_handle(), 0);
    EXPECT_NE(c.local_port(), 0);
    EXPECT_NE(c.local_port(), p.port);
    co_await c.write_all(std::string_view("hello, world"));
    std::string reply(12, '\0');
    bool full = co_await c.read_exactly(bytes(reply));
    EXPECT_TRUE(full);
    c.shutdown_write();
    std::string rest(8, '\0');
    std::size_t n = co_await c.read(bytes(rest));
    EXPECT_EQ(n, 0u);  // server closed after our shutdown
    got.set(reply);
  });
  EXPECT_EQ(got.get(), "hello, world");
}

// detail::attach_fd: one edge-triggered registration instead of arming every wait. Each readiness
// edge reaches the process as a wake-up; one that comes while it is not waiting on the fd is
// kept for its next wait (so bytes that arrive in between are never missed) and does not cut
// short a wait of another kind.
TEST_F(RuntimeTest, AttachedSocketKeepsEdgesForTheNextWaitAndWakesOnlyFdWaits) {
  using detail::fd_wait_for;
  struct later {};
  outcome<std::string> got;
  run([&](process& self) -> proc {
    std::string log;
    tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
    tcp_socket c = co_await tcp_socket::connect("127.0.0.1", l.port());
    tcp_socket s = co_await l.accept();
    EXPECT_EQ(detail::attach_fd(s.native_handle(), self.self()), 0);
    const int fd = s.native_handle();
    // Nothing to read: the wait times out (after the one edge attaching may report: writable).
    io_wait_result w = io_wait_result::ready;
    for (int i = 0; i < 3 && w == io_wait_result::ready; ++i) w = co_await fd_wait_for(fd, io_readable, 20, false, nullptr, true);
    log += w == io_wait_result::timeout ? "timeout " : "no-timeout ";
    // Bytes arrive while the process sleeps: the sleep lasts its time, and the next wait on the
    // fd returns at once.
    co_await c.write_all(std::string_view("ab"));
    auto t0 = std::chrono::steady_clock::now();
    co_await self.sleep(30ms);
    // (The timer wheel counts whole milliseconds, so a sleep may end a fraction of one early.)
    log += std::chrono::steady_clock::now() - t0 >= 29ms ? "slept " : "woken-early ";
    w = co_await fd_wait_for(fd, io_readable, 5000, false, nullptr, true);
    std::string buf(16, '\0');
    io_result r = s.try_read(bytes(buf));
    log += fmt::format("{} {} ", w == io_wait_result::ready ? "ready" : "not-ready", std::string_view(buf.data(), r.n));
    // Waiting first, bytes later (from another process): the edge ends the wait.
    pid writer_pid = spawn([c = std::move(c)](process& writer) mutable -> proc {
      co_await writer.sleep(20ms);
      co_await c.write_all(std::string_view("xyz"));
      co_await writer.receive<later>();  // keeps the socket open until the reader is done
    });
    do {
      w = co_await fd_wait_for(fd, io_readable, 5000, false, nullptr, true);
      r = s.try_read(bytes(buf));
    } while (r.would_block && w == io_wait_result::ready);  // a spare edge: look again
    log += fmt::format("{} ", std::string_view(buf.data(), r.n));
    // In mailbox mode a message ends the wait as before.
    send(self.self(), later{});
    w = co_await fd_wait_for(fd, io_readable, 5000, true, nullptr, true);
    log += w == io_wait_result::message ? "message" : "no-message";
    co_await self.receive<later>();
    send(writer_pid, later{});
    got.set(log);
  });
  EXPECT_EQ(got.get(), "timeout slept ready ab xyz message");
}

TEST_F(RuntimeTest, ManyConnectionsWaitWithoutThreads) {
  constexpr int kClients = 200;
  outcome<int> served;
  run([&](process& self) -> proc {
    pid me = self.self();
    tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
    std::uint16_t port = l.port();
    // One process per connection, each blocked in read.
    for (int i = 0; i < kClients; ++i) {
      spawn([me, port](process&) -> proc {
        tcp_socket c = co_await tcp_socket::connect("127.0.0.1", port);
        std::string b(1, '\0');
        std::size_t n = co_await c.read(bytes(b));
        send(me, int(n == 1 && b[0] == 'a'));
      });
    }
    std::vector<tcp_socket> conns;
    for (int i = 0; i < kClients; ++i) conns.push_back(co_await l.accept());
    EXPECT_EQ(system_info().process_count, std::size_t(kClients + 1));
    // Replies go out only now: every client process has been waiting on its socket.
    int ok = 0;
    for (auto& c : conns) co_await c.write_all(std::string_view("a"));
    for (int i = 0; i < kClients; ++i) ok += co_await self.receive<int>();
    served.set(ok);
  });
  EXPECT_EQ(served.get(), kClients);
}

TEST_F(RuntimeTest, ConnectToAClosedPortThrowsAndEndsTheProcess) {
  outcome<bool> threw;
  run([&](process&) -> proc {
    // Find a free port by binding and closing.
    tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
    std::uint16_t port = l.port();
    EXPECT_GE(l.native_handle(), 0);
    l.close();
    EXPECT_EQ(l.native_handle(), -1);
    try {
      co_await tcp_socket::connect("127.0.0.1", port);
      threw.set(false);
    } catch (const std::system_error& e) {
      threw.set(e.code().value() == ECONNREFUSED);
    }
  });
  EXPECT_TRUE(threw.get());
}

TEST_F(RuntimeTest, SocketsMoveAndCloseOnce) {
  run([](process&) -> proc {
    tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
    tcp_listener moved = std::move(l);
    EXPECT_EQ(l.native_handle(), -1);
    EXPECT_GE(moved.native_handle(), 0);
    tcp_socket c = co_await tcp_socket::connect("127.0.0.1", moved.port());
    tcp_socket d;
    EXPECT_FALSE(d.is_open());
    d = std::move(c);
    EXPECT_FALSE(c.is_open());
    EXPECT_TRUE(d.is_open());
    d.close();
    EXPECT_FALSE(d.is_open());
    d.close();  // closing twice is harmless
  });
}

TEST_F(RuntimeTest, BadAddressesAreReportedNotCrashed) {
  EXPECT_THROW(tcp_listener::listen("not-an-ip", 0), std::system_error);
}

}  // namespace
}  // namespace athanor::testing
