// The runtime's io_wait and non-blocking socket calls (added for the web part).
#include <sys/resource.h>

#include <future>

#include "web_test_util.h"

namespace athanor::web::testing {
namespace {

struct wake {};
struct other {};

// Runs body in a process on a fresh runtime and waits for it.
template <class F>
void in_process(F body) {
  runtime rt(runtime_config{.schedulers = 2});
  spawn(std::move(body));
  ASSERT_TRUE(rt.wait_for(20s));
}

TEST(IoWait, TimesOutReadyOrWokenByAMessageOfTheRightType) {
  std::promise<std::vector<int>> result;
  in_process([&](process& self) -> proc {
    std::vector<int> got;
    tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
    tcp_socket c = co_await tcp_socket::connect("127.0.0.1", l.port());
    tcp_socket s = co_await l.accept();
    // Nothing to read: times out.
    io_wait_result a = co_await io_wait(s.native_handle(), io_readable, 20ms);
    got.push_back(int(a));
    // A message of another type does not wake a typed wait; the right type does (and stays queued).
    send(self.self(), other{});
    send(self.self(), wake{});
    io_wait_result b = co_await io_wait_or_message<wake>(s.native_handle(), io_readable, 5000ms);
    got.push_back(int(b));
    EXPECT_EQ(self.message_queue_len(), 2u);
    wake w = co_await self.receive<wake>();
    (void)w;
    // Any message wakes an untyped wait.
    io_wait_result c2 = co_await io_wait(s.native_handle(), io_readable, 5000ms, true);
    got.push_back(int(c2));
    other o = co_await self.receive<other>();
    (void)o;
    // Data: ready; try_read then gets it; then would_block.
    co_await c.write_all(std::string_view("hi"));
    io_wait_result d = co_await io_wait(s.native_handle(), io_readable, 5000ms);
    got.push_back(int(d));
    std::string buf(8, '\0');
    io_result r = s.try_read(std::as_writable_bytes(std::span(buf.data(), buf.size())));
    EXPECT_EQ(r.n, 2u);
    io_result r2 = s.try_read(std::as_writable_bytes(std::span(buf.data(), buf.size())));
    EXPECT_TRUE(r2.would_block);
    // Writable at once.
    io_wait_result e = co_await io_wait(s.native_handle(), io_writable, 5000ms);
    got.push_back(int(e));
    io_result w2 = s.try_write(std::as_bytes(std::span("x", 1)));
    EXPECT_EQ(w2.n, 1u);
    EXPECT_NE(s.peer_name().find("127.0.0.1:"), std::string::npos);
    EXPECT_TRUE(s.set_buffer_sizes(8192, 8192));
    // End of stream.
    c.close();
    io_wait_result f = co_await io_wait(s.native_handle(), io_readable, 5000ms);
    (void)f;
    io_result eof = s.try_read(std::as_writable_bytes(std::span(buf.data(), buf.size())));
    EXPECT_TRUE(eof.eof);
    result.set_value(got);
  });
  std::vector<int> want = {int(io_wait_result::timeout), int(io_wait_result::message), int(io_wait_result::message),
                           int(io_wait_result::ready), int(io_wait_result::ready)};
  EXPECT_EQ(result.get_future().get(), want);
}

TEST(IoWait, TryAcceptAndDuplicatedListeners) {
  std::promise<int> result;
  in_process([&](process&) -> proc {
    tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
    tcp_listener d = l.duplicate();
    EXPECT_EQ(d.port(), l.port());
    EXPECT_NE(d.native_handle(), l.native_handle());
    EXPECT_FALSE(l.try_accept().is_open());  // nothing pending
    tcp_socket c = co_await tcp_socket::connect("127.0.0.1", l.port());
    io_wait_result w = co_await io_wait(d.native_handle(), io_readable, 5000ms);
    EXPECT_EQ(w, io_wait_result::ready);
    tcp_socket s = d.try_accept();  // the same queue through the other descriptor
    result.set_value(s.is_open() ? 1 : 0);
  });
  EXPECT_EQ(result.get_future().get(), 1);
}

TEST(IoWait, TryAcceptReportsErrorsInPlaceOrThrows) {
  runtime rt(runtime_config{.schedulers = 1});
  tcp_listener none;  // no descriptor: accept4 fails with EBADF
  int error = -1;
  EXPECT_FALSE(none.try_accept(error).is_open());
  EXPECT_EQ(error, EBADF);
  EXPECT_THROW((void)none.try_accept(), std::system_error);
  tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
  EXPECT_FALSE(l.try_accept(error).is_open());  // nothing pending is no error
  EXPECT_EQ(error, 0);
}

TEST(IoWait, AKilledWaiterLeavesNoTimerBehind) {
  runtime rt(runtime_config{.schedulers = 1});
  pid p = spawn([](process&) -> proc {
    tcp_listener l = tcp_listener::listen("127.0.0.1", 0);
    io_wait_result r = co_await io_wait(l.native_handle(), io_readable, 60s);
    (void)r;
  });
  while (system_info().pending_timers == 0) std::this_thread::yield();
  exit(p, atoms::kill);
  ASSERT_TRUE(rt.wait_for(5s));
  EXPECT_EQ(system_info().pending_timers, 0u);
}

}  // namespace
}  // namespace athanor::web::testing
