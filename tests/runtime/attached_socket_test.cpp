// tcp_socket::attach: a socket handed to one process for life, on the io_uring path (a ring per
// scheduler: queued receives and sends) and on the epoll path (one edge-triggered registration).
// Every test runs on both; what a process sees must not depend on which one carries its bytes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "test_util.h"

namespace athanor::testing {
namespace {

std::span<std::byte> bytes(std::string& s) { return std::as_writable_bytes(std::span(s.data(), s.size())); }

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = char('a' + (i * 7 + i / 4096) % 26);
  return s;
}

class AttachedSocketTest : public RuntimeTest, public ::testing::WithParamInterface<bool> {
 protected:
  runtime_config config() override {
    runtime_config c = RuntimeTest::config();
    c.io_uring = GetParam();
    return c;
  }
};

INSTANTIATE_TEST_SUITE_P(Paths, AttachedSocketTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "IoUring" : "Epoll"; });

struct port_is { std::uint16_t port; };
struct done {};

// A loopback connection made by the calling process, its server end attached to `owner`.
struct socket_pair {
  tcp_socket client, server;
};
task<socket_pair> attached_pair(pid owner) {
  tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
  socket_pair p;
  p.client = co_await tcp_socket::connect("127.0.0.1", l.port());
  p.server = co_await l.accept();
  EXPECT_EQ(p.server.attach(owner), 0);
  co_return p;
}

// Writes `text` on `from` and waits on the attached `to` (through `lazy`, with a timeout of
// wait_ms) until bytes arrive; reads them into buf.
task<void> send_and_wait(tcp_socket& from, tcp_socket& to, std::string text, std::int64_t wait_ms,
                         detail::lazy_deadline& lazy, std::string& buf) {
  co_await from.write_all(std::string_view(text));
  io_result r{};
  while (r.n == 0) {
    co_await detail::fd_wait_for(to.native_handle(), io_readable, wait_ms, false, nullptr, true, &lazy);
    r = to.try_read(bytes(buf));
  }
}

// An attached server echoes 1 MiB sent in 16 KiB steps: every byte comes back, in order
// (receives span many buffers, sends may be partial and queue behind each other).
TEST_P(AttachedSocketTest, EchoesEveryByteInOrder) {
  constexpr std::size_t kTotal = 1 << 20, kStep = 16 * 1024;
  outcome<bool> same;
  run([&](process& self) -> proc {
    pid me = self.self();
    spawn([me](process& server) -> proc {
      tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
      send(me, port_is{l.port()});
      tcp_socket conn = co_await l.accept();
      EXPECT_EQ(conn.attach(server.self()), 0);
      EXPECT_TRUE(conn.is_attached());
      EXPECT_EQ(conn.attach(server.self()), 0);  // a second attach changes nothing
      std::string buf(8192, '\0');
      for (;;) {
        std::size_t n = co_await conn.read(bytes(buf));
        if (n == 0) break;
        co_await conn.write_all(std::string_view(buf.data(), n));
      }
    });
    port_is p = co_await self.receive<port_is>();
    tcp_socket c = co_await tcp_socket::connect("127.0.0.1", p.port);
    std::string sent = pattern(kTotal), back(kTotal, '\0');
    for (std::size_t at = 0; at < kTotal; at += kStep) {
      co_await c.write_all(std::string_view(sent).substr(at, kStep));
      bool full = co_await c.read_exactly(bytes(back).subspan(at, kStep));
      EXPECT_TRUE(full);
    }
    c.shutdown_write();
    std::string rest(8, '\0');
    std::size_t n = co_await c.read(bytes(rest));
    EXPECT_EQ(n, 0u);  // the server saw our end of stream and closed
    same.set(back == sent);
  });
  EXPECT_TRUE(same.get());
}

// Back-pressure on output: a peer that does not read makes try_write report would_block after a
// bounded amount (the kernel's buffers, plus the ring's 256 KiB limit); once it reads, the writer
// goes on, and bytes accepted before close() still reach it.
TEST_P(AttachedSocketTest, WritesWouldBlockWhileThePeerDoesNotReadAndCloseStillDelivers) {
  outcome<std::size_t> accepted, received;
  run([&](process& self) -> proc {
    pid me = self.self();
    spawn([me](process& server) -> proc {
      tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
      send(me, port_is{l.port()});
      tcp_socket conn = co_await l.accept();
      conn.set_buffer_sizes(16 * 1024, 16 * 1024);
      EXPECT_EQ(conn.attach(server.self()), 0);
      std::string chunk = pattern(64 * 1024);
      std::size_t total = 0;
      for (int i = 0; i < 10'000; ++i) {  // bounded: the limit comes long before 640 MB
        io_result r = conn.try_write(std::as_bytes(std::span(chunk.data(), chunk.size())));
        total += r.n;
        if (r.would_block) break;
      }
      EXPECT_LT(total, std::size_t(64) << 20);
      send(me, total);  // the peer starts reading now
      co_await conn.write_all(std::string_view(chunk));  // waits for room
      // Ends here: the socket closes with bytes possibly still queued for the peer.
    });
    port_is p = co_await self.receive<port_is>();
    tcp_socket c = co_await tcp_socket::connect("127.0.0.1", p.port);
    std::size_t before = co_await self.receive<std::size_t>();
    accepted.set(before);
    std::string buf(64 * 1024, '\0');
    std::size_t got = 0;
    for (;;) {
      std::size_t n = co_await c.read(bytes(buf));
      if (n == 0) break;
      got += n;
    }
    received.set(got);
  });
  EXPECT_EQ(received.get(), accepted.get() + 64 * 1024);
}

// Back-pressure on input: a process that does not read holds a bounded amount (the ring stops
// receiving at 64 KiB and TCP's window stops the sender); when it reads, every byte arrives.
TEST_P(AttachedSocketTest, AnOwnerThatDoesNotReadStopsTheSenderWithoutLosingBytes) {
  constexpr std::size_t kTotal = 4 << 20;
  outcome<bool> same;
  run([&](process& self) -> proc {
    pid me = self.self();
    tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
    std::uint16_t port = l.port();
    pid writer = spawn([me, port](process& w) -> proc {
      tcp_socket c = co_await tcp_socket::connect("127.0.0.1", port);
      c.set_buffer_sizes(16 * 1024, 16 * 1024);
      std::string data = pattern(kTotal);
      co_await c.write_all(std::string_view(data));  // finishes only once the reader reads
      send(me, done{});
      co_await w.receive<done>();
    });
    tcp_socket conn = co_await l.accept();
    conn.set_buffer_sizes(16 * 1024, 16 * 1024);
    EXPECT_EQ(conn.attach(self.self()), 0);
    // Not reading: the writer cannot finish (4 MiB is far beyond what the buffers hold).
    auto early = co_await self.receive_for<done>(100ms);
    EXPECT_FALSE(early.has_value());
    std::string got(kTotal, '\0');
    bool full = co_await conn.read_exactly(bytes(got));
    EXPECT_TRUE(full);
    co_await self.receive<done>();
    send(writer, done{});
    same.set(full && got == pattern(kTotal));
  });
  EXPECT_TRUE(same.get());
}

// End of stream reads as 0 (and stays so); a write to a peer that has gone fails with
// std::system_error rather than vanishing.
TEST_P(AttachedSocketTest, EndOfStreamAndWritesToAGonePeer) {
  outcome<std::string> log;
  run([&](process& self) -> proc {
    std::string out;
    socket_pair pair = co_await attached_pair(self.self());
    tcp_socket& c = pair.client;
    tcp_socket& s = pair.server;
    co_await c.write_all(std::string_view("bye"));
    c.close();
    std::string buf(16, '\0');
    std::size_t n = co_await s.read(bytes(buf));
    out += std::string(buf.data(), n) + " ";
    n = co_await s.read(bytes(buf));
    out += std::to_string(n) + " ";
    n = co_await s.read(bytes(buf));
    out += std::to_string(n) + " ";
    bool threw = false;
    std::string data(64 * 1024, 'x');
    try {
      // The first writes may be accepted (the reset has not come back yet); within a few the
      // failure must show.
      for (int i = 0; i < 1000 && !threw; ++i) {
        co_await s.write_all(std::string_view(data));
        // The peer's reset comes back as an edge (a failed send, or EPOLLERR).
        co_await detail::fd_wait_for(s.native_handle(), io_readable, 50, false, nullptr, true);
      }
    } catch (const std::system_error&) {
      threw = true;
    }
    out += threw ? "threw" : "no-error";
    log.set(out);
  });
  EXPECT_EQ(log.get(), "bye 0 0 threw");
}

// A process killed while its attached socket has a receive in flight: the socket is closed and
// its memory freed (ASan checks), the peer sees the end of stream, and the node goes on.
TEST_P(AttachedSocketTest, KillingTheOwnerClosesTheSocket) {
  outcome<std::size_t> n_after_kill;
  run([&](process& self) -> proc {
    pid me = self.self();
    pid owner = spawn([me](process& o) -> proc {
      tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
      send(me, port_is{l.port()});
      tcp_socket s = co_await l.accept();
      EXPECT_EQ(s.attach(o.self()), 0);  // on the ring path, a receive is in flight from here
      send(me, done{});
      std::string buf(16, '\0');
      co_await s.read(bytes(buf));  // waits until killed
    });
    port_is p = co_await self.receive<port_is>();
    tcp_socket c = co_await tcp_socket::connect("127.0.0.1", p.port);
    co_await self.receive<done>();
    exit(owner, atoms::kill);
    std::string buf(16, '\0');
    std::size_t n = co_await c.read(bytes(buf));
    n_after_kill.set(n);
  });
  EXPECT_EQ(n_after_kill.get(), 0u);
}

// detail::lazy_deadline: one timer serves successive attached waits whose deadlines only move
// later (an idle timeout pushed back by traffic); an earlier deadline re-arms it; a wait still
// times out at its own deadline, never before; destroying it cancels the timer.
TEST_P(AttachedSocketTest, ALazyDeadlineKeepsOneTimerAcrossWaits) {
  using detail::fd_wait_for;
  outcome<std::string> log;
  run([&](process& self) -> proc {
    std::string out;
    socket_pair pair = co_await attached_pair(self.self());
    tcp_socket& c = pair.client;
    tcp_socket& s = pair.server;
    const int fd = s.native_handle();
    std::string buf(16, '\0');
    std::uint64_t timers_before = system_info().pending_timers;
    {
      detail::lazy_deadline lazy;
      // Bytes end the first wait; its timer stays armed.
      co_await send_and_wait(c, s, "a", 10'000, lazy, buf);
      std::uint64_t first = lazy.handle;
      out += first != 0 ? "armed " : "unarmed ";
      out += system_info().pending_timers == timers_before + 1 ? "one " : "not-one ";
      // A later deadline keeps it.
      co_await send_and_wait(c, s, "b", 20'000, lazy, buf);
      out += lazy.handle == first ? "kept " : "rearmed ";
      // An earlier one replaces it, and the wait times out at that deadline, not before.
      auto t0 = std::chrono::steady_clock::now();
      io_wait_result w = io_wait_result::ready;
      while (w == io_wait_result::ready) w = co_await fd_wait_for(fd, io_readable, 30, false, nullptr, true, &lazy);
      out += lazy.handle != first ? "replaced " : "same ";
      out += w == io_wait_result::timeout && std::chrono::steady_clock::now() - t0 >= 29ms ? "timeout " : "early ";
      // A long one, ended by bytes: its timer is still pending when `lazy` goes.
      co_await send_and_wait(c, s, "c", 50'000, lazy, buf);
      out += system_info().pending_timers == timers_before + 1 ? "" : "no-timer ";
    }
    out += system_info().pending_timers == timers_before ? "cancelled" : "leaked";
    log.set(out);
  });
  EXPECT_EQ(log.get(), "armed one kept replaced timeout cancelled");
}

// One scheduler, and its thread stuck in a CPU hog: the relief thread the runtime starts has no
// ring, so the socket operations of the process it runs are handed to a ring thread
// (ring_orphan) and still happen. (The reply is written while the hog runs.)
class AttachedSocketReliefTest : public AttachedSocketTest {
 protected:
  runtime_config config() override {
    runtime_config c = AttachedSocketTest::config();
    c.schedulers = 1;
    return c;
  }
};
INSTANTIATE_TEST_SUITE_P(Paths, AttachedSocketReliefTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "IoUring" : "Epoll"; });

TEST_P(AttachedSocketReliefTest, AReplyWrittenOnAReliefThreadArrives) {
  struct got_eof {};
  struct go {};
  std::atomic<int> client_got{-1};
  std::thread client;
  run([&](process& self) -> proc {
    pid me = self.self();
    pid srv = spawn([me](process& server) -> proc {
      tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
      send(me, port_is{l.port()});
      tcp_socket conn = co_await l.accept();
      EXPECT_EQ(conn.attach(server.self()), 0);
      std::string buf(64, '\0');
      while (co_await conn.read(bytes(buf)) != 0) {
      }
      send(me, got_eof{});  // no receive armed any more
      co_await server.receive<go>();
      co_await conn.write_all(std::string_view("resp"));
      conn.close();
    });
    port_is p = co_await self.receive<port_is>();
    client = std::thread([&client_got, port = p.port] {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
      ::send(fd, "hi", 2, 0);
      ::shutdown(fd, SHUT_WR);
      pollfd pf{fd, POLLIN, 0};
      char b[16];
      client_got = ::poll(&pf, 1, 10'000) > 0 ? int(::read(fd, b, sizeof b)) : -2;  // -2: nothing in 10 s
      ::close(fd);
    });
    co_await self.receive<got_eof>();
    spawn([srv](process&) -> proc {
      send(srv, go{});  // srv is queued behind this hog, on the only scheduler
      auto until = std::chrono::steady_clock::now() + 300ms;
      while (std::chrono::steady_clock::now() < until) {
      }
      co_return;
    });
  });
  client.join();
  EXPECT_EQ(client_got.load(), 4);
}

TEST_P(AttachedSocketTest, AttachingAClosedSocketFails) {
  outcome<int> rc;
  run([&](process& self) -> proc {
    tcp_socket s;
    rc.set(s.attach(self.self()));
    EXPECT_FALSE(s.is_attached());
    co_return;
  });
  EXPECT_EQ(rc.get(), EBADF);
}

}  // namespace
}  // namespace athanor::testing
