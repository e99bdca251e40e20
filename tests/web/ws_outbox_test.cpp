// ws_outbox: pushes to a WebSocket connection from other processes, bounded by
// ws_options::max_outbox (issue 12, item 7: a fan-out into a member that does not read grew the
// member's mailbox without bound). Real sockets: a raw client on the other end, frames decoded
// with the library's own ws_decoder (unmasked server frames, permessage-deflate when negotiated).
#include <algorithm>
#include <future>
#include <thread>
#include <vector>

#include "../runtime/log_capture.h"
#include "web_test_util.h"

namespace athanor::web::testing {
namespace {

std::string upgrade_request(std::string_view path, std::string_view extra = "") {
  std::string r = "GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  r += extra;
  r += "\r\n";
  return r;
}

std::string masked(ws_opcode op, std::string_view payload) {
  std::string f;
  ws_encode_frame(f, op, payload, true, false, 0x11223344u);
  return f;
}

// The client side of one connection: upgrades, then decodes what the server sends.
class ws_client {
 public:
  // `receive_buffer` > 0 shrinks the socket's receive buffer, so a client that does not read
  // backs the server up sooner.
  ws_client(std::uint16_t port, std::string_view path, int receive_buffer = 0, bool deflate = false)
      : c_(port), deflate_(ws_deflate_params{}), decoder_(ws_limits{}, false, deflate ? &deflate_ : nullptr) {
    if (receive_buffer > 0) ::setsockopt(c_.fd(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    c_.send(upgrade_request(path, deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : ""));
    std::string got;
    if (!c_.read_until(got, "\r\n\r\n", 10s) || got.rfind("HTTP/1.1 101", 0) != 0) return;
    head_ = got.substr(0, got.find("\r\n\r\n"));
    buf_ = got.substr(got.find("\r\n\r\n") + 4);
    upgraded_ = true;
  }
  bool upgraded() const { return upgraded_; }
  const std::string& head() const { return head_; }
  raw_client& raw() { return c_; }

  // The next message or control frame the server sent; nullopt if the connection ended first (or
  // nothing came for `patience`: a guard against hanging, not a timing check).
  std::optional<ws_decoder::event> next(std::chrono::milliseconds patience = 20s) {
    for (;;) {
      if (!events_.empty()) {
        ws_decoder::event e = std::move(events_.front());
        events_.erase(events_.begin());
        return e;
      }
      if (decoder_.finished()) return std::nullopt;
      std::size_t used = decoder_.feed(buf_, events_);
      buf_.erase(0, used);
      if (!events_.empty()) continue;
      if (!read_some(patience)) return std::nullopt;
    }
  }

  // Reads until the server's close frame; returns its code (0 if none came). `data` counts the
  // data messages before it.
  std::uint16_t close_code(std::size_t* data = nullptr) {
    for (;;) {
      std::optional<ws_decoder::event> e = next();
      if (!e) return 0;
      if (e->k == ws_decoder::event::kind::close) return e->code;
      if (e->k == ws_decoder::event::kind::message && data) ++*data;
    }
  }

  void send_close(std::uint16_t code = 1000) {
    c_.send(masked(ws_opcode::close, std::string{char(code >> 8), char(code & 0xFF)}));
  }

 private:
  // Appends what the socket has (waiting up to `patience` for something). False at its end.
  bool read_some(std::chrono::milliseconds patience) {
    pollfd p{c_.fd(), POLLIN, 0};
    if (::poll(&p, 1, int(patience.count())) <= 0) return false;
    char chunk[64 * 1024];
    ssize_t n = ::recv(c_.fd(), chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf_.append(chunk, std::size_t(n));
    return true;
  }

  raw_client c_;
  ws_deflate deflate_;
  ws_decoder decoder_;
  std::string head_, buf_;
  std::vector<ws_decoder::event> events_;
  bool upgraded_ = false;
};

// What a member handler hands to the test: its outbox, its pid, and how it ended.
struct member_probe {
  std::promise<ws_outbox> box;
  std::promise<pid> self;
  std::promise<std::uint16_t> ended;  // close_code() once receive() returned nullopt
};

// A member as athanor-hello's: it only receives (pushes are written inside receive()).
router member_router(std::shared_ptr<member_probe> probe, ws_options o) {
  router r;
  r.websocket("/member", [probe](ws& w) -> proc {
    probe->box.set_value(w.outbox());
    probe->self.set_value(athanor::self());
    while (co_await w.receive()) {
    }
    probe->ended.set_value(w.close_code());
  }, std::move(o));
  return r;
}

template <class T>
T await_value(std::promise<T>& p) {
  std::future<T> f = p.get_future();
  if (f.wait_for(60s) != std::future_status::ready) throw std::runtime_error("the handler did not get there");
  return f.get();
}

class WsOutboxTest : public WebTest {};

// The case: a member that never reads while another pushes 64 MiB to it. The push past
// max_outbox is refused and cuts it (1008, counted once, logged once); the bytes held for it
// never exceed the limit; the client, reading at last, finds a 1008 close frame (never 1000).
TEST_F(WsOutboxTest, MemberThatDoesNotReadIsCutWith1008AndHoldsNoMoreThanTheLimit) {
  athanor::testing::log_capture logs;
  auto probe = std::make_shared<member_probe>();
  ws_options o;
  o.max_send_buffer = 64 * 1024;
  start(member_router(probe, o));
  ws_client c(port(), "/member");  // (a full-size receive buffer: it reads all of it at the end)
  ASSERT_TRUE(c.upgraded());
  ws_outbox box = await_value(probe->box);
  EXPECT_TRUE(box.is_open());

  const std::string chunk(64 * 1024 - ws_outbox::per_message_overhead, 'x');
  int accepted = 0, refused = 0, first_refused = -1;
  std::size_t most_queued = 0;
  for (int i = 0; i < 1024; ++i) {  // 64 MiB in all
    bool ok = box.push_text(chunk);
    std::size_t q = box.queued_bytes();
    most_queued = std::max(most_queued, q);
    ASSERT_LE(q, o.max_outbox) << "push " << i;
    if (ok) {
      ASSERT_EQ(first_refused, -1) << "push " << i << " was queued after one was refused";
      ++accepted;
    } else {
      if (first_refused < 0) first_refused = i;
      ++refused;
    }
  }
  ASSERT_GE(first_refused, 0) << "64 MiB went in without a refusal";
  EXPECT_EQ(refused, 1024 - first_refused);
  EXPECT_GT(accepted, 0);
  EXPECT_GT(most_queued, 0u);
  EXPECT_LE(most_queued, o.max_outbox);
  EXPECT_EQ(srv_.slow_clients_cut(), 1u);
  EXPECT_FALSE(box.is_open());
  EXPECT_EQ(box.queued_bytes(), 0u);  // what was queued is freed at the cut

  std::vector<log_event> cuts;
  for (const log_event& e : logs.events())
    if (e.part == "web" && e.level == log_level::warning) cuts.push_back(e);
  ASSERT_EQ(cuts.size(), 1u);
  EXPECT_NE(cuts[0].text.find("/member"), std::string::npos) << cuts[0].text;
  EXPECT_NE(cuts[0].text.find(std::to_string(o.max_outbox)), std::string::npos) << cuts[0].text;
  EXPECT_NE(cuts[0].text.find("127.0.0.1:"), std::string::npos) << cuts[0].text;
  EXPECT_EQ(cuts[0].get("path"), term("/member"));
  EXPECT_EQ(cuts[0].get("limit"), term(o.max_outbox));

  std::size_t frames = 0;
  EXPECT_EQ(c.close_code(&frames), ws_close::policy);
  EXPECT_LE(frames, std::size_t(accepted));
  EXPECT_EQ(await_value(probe->ended), ws_close::policy);
  EXPECT_EQ(srv_.slow_clients_cut(), 1u);
}

// A client that reads gets every pushed message, text and binary, in the order pushed, none
// lost, though the connection takes them max_send_buffer at a time.
TEST_F(WsOutboxTest, ReaderGetsEveryPushInOrder) {
  auto probe = std::make_shared<member_probe>();
  ws_options o;
  o.max_send_buffer = 16 * 1024;
  o.max_outbox = 16 << 20;  // more than all of it: nothing may be refused, however the threads run
  start(member_router(probe, o));
  ws_client c(port(), "/member");
  ASSERT_TRUE(c.upgraded());
  ws_outbox box = await_value(probe->box);

  constexpr int kMessages = 3000;
  auto payload = [](int i) { return "m" + std::to_string(i) + ":" + std::string(std::size_t(i * 37 % 3000), char('a' + i % 26)); };
  std::vector<ws_decoder::event> got;
  std::thread reader([&] {
    for (int i = 0; i < kMessages; ++i) {
      std::optional<ws_decoder::event> e = c.next();
      if (!e) break;
      got.push_back(std::move(*e));
    }
  });
  int refused = 0;
  for (int i = 0; i < kMessages; ++i) {
    bool ok = i % 3 == 0   ? box.push_text(payload(i))
              : i % 3 == 1 ? box.push_binary(payload(i))
                           : box.push(ws_message::text(payload(i)));
    refused += !ok;
  }
  reader.join();
  EXPECT_EQ(refused, 0);
  ASSERT_EQ(got.size(), std::size_t(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_EQ(got[i].k, ws_decoder::event::kind::message) << i;
    ASSERT_EQ(got[i].op, i % 3 == 1 ? ws_opcode::binary : ws_opcode::text) << i;
    ASSERT_EQ(got[i].data, payload(i)) << i;
  }
  EXPECT_EQ(box.queued_bytes(), 0u);  // all taken: every message has been read
  EXPECT_TRUE(box.is_open());
  EXPECT_EQ(srv_.slow_clients_cut(), 0u);
  c.send_close(1000);
  EXPECT_EQ(c.close_code(), 1000);
  EXPECT_EQ(await_value(probe->ended), 1000);
}

// Pushes after the connection has closed are refused (and are not a cut); so are pushes through
// an empty handle, and through a handle taken after the close.
TEST_F(WsOutboxTest, PushesToAClosedConnectionAreRefused) {
  struct probe_t {
    std::promise<ws_outbox> box;
    std::promise<bool> late_push;  // through w.outbox() taken after the close
  };
  auto probe = std::make_shared<probe_t>();
  router r;
  r.websocket("/member", [probe](ws& w) -> proc {
    probe->box.set_value(w.outbox());
    while (co_await w.receive()) {
    }
    ws_outbox late = w.outbox();
    probe->late_push.set_value(late.push_text("late") || late.is_open());
  });
  start(std::move(r));

  ws_outbox empty;
  EXPECT_FALSE(empty.push_text("x"));
  EXPECT_FALSE(empty.push_binary("x"));
  EXPECT_FALSE(empty.push(ws_message::text("x")));
  EXPECT_FALSE(empty.is_open());
  EXPECT_EQ(empty.queued_bytes(), 0u);

  ws_client c(port(), "/member");
  ASSERT_TRUE(c.upgraded());
  ws_outbox box = await_value(probe->box);
  ws_outbox copy = box;
  EXPECT_TRUE(copy.is_open());
  ASSERT_TRUE(copy.push_text("before"));
  std::optional<ws_decoder::event> e = c.next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "before");
  c.send_close(1000);
  EXPECT_EQ(c.close_code(), 1000);
  EXPECT_FALSE(await_value(probe->late_push));  // the handler got past receive(): the connection is closed

  EXPECT_FALSE(box.is_open());
  EXPECT_FALSE(box.push_text("after"));
  EXPECT_FALSE(copy.push_binary("after"));
  EXPECT_FALSE(box.push(ws_message::binary("after")));
  EXPECT_EQ(box.queued_bytes(), 0u);
  EXPECT_EQ(srv_.slow_clients_cut(), 0u);
}

// What failed before: two processes flood a member that does not read (the 2.3 GB). Its
// mailbox never holds more than the one wake-up, its outbox never more than max_outbox, and
// the flood ends in one cut.
TEST_F(WsOutboxTest, FloodFromTwoProcessesLeavesTheMembersMailboxBounded) {
  auto probe = std::make_shared<member_probe>();
  ws_options o;
  o.max_send_buffer = 64 * 1024;
  start(member_router(probe, o));
  ws_client c(port(), "/member", 4096);
  ASSERT_TRUE(c.upgraded());
  ws_outbox box = await_value(probe->box);
  pid member = await_value(probe->self);

  struct tally {
    std::atomic<int> accepted{0}, refused{0}, over_limit{0}, done{0};
    std::atomic<std::size_t> most_mail{0}, samples{0};
  };
  auto t = std::make_shared<tally>();
  const std::size_t limit = o.max_outbox;
  for (int k = 0; k < 2; ++k) {
    spawn([box, t, limit, member](process& self) -> proc {
      const std::string text(1024, 'f');
      for (int i = 0; i < 16 * 1024; ++i) {  // 16 MiB from each
        if (i % 64 == 0) {
          // The member's mailbox, now (the first look comes before this pusher's first push,
          // so at least one look finds the member alive).
          if (std::optional<process_info_t> info = co_await process_info_async(member)) {
            std::size_t seen = t->most_mail.load();
            while (info->message_queue_len > seen && !t->most_mail.compare_exchange_weak(seen, info->message_queue_len)) {
            }
            t->samples.fetch_add(1);
          }
        }
        if (box.push_text(text)) t->accepted.fetch_add(1);
        else t->refused.fetch_add(1);
        if (box.queued_bytes() > limit) t->over_limit.fetch_add(1);
        co_await self.consume(1);
      }
      t->done.fetch_add(1);
    });
  }
  EXPECT_EQ(await_value(probe->ended), ws_close::policy);
  while (t->done.load() < 2) std::this_thread::yield();
  std::size_t samples = t->samples.load(), most_mail = t->most_mail.load();
  EXPECT_GT(samples, 0u);
  EXPECT_LE(most_mail, 1u) << "the member's mailbox grew with the flood";
  EXPECT_EQ(t->over_limit.load(), 0);
  EXPECT_GT(t->refused.load(), 0);
  EXPECT_EQ(t->accepted.load() + t->refused.load(), 2 * 16 * 1024);
  EXPECT_EQ(srv_.slow_clients_cut(), 1u);
  EXPECT_EQ(box.queued_bytes(), 0u);
}

// A handler blocked in its own send() to a client that does not read notices the cut at once:
// it does not wait out send_timeout (an hour here).
TEST_F(WsOutboxTest, BlockedSendEndsWith1008WhenTheOutboxIsCut) {
  auto probe = std::make_shared<member_probe>();
  ws_options o;
  o.max_send_buffer = 64 * 1024;
  o.send_timeout = std::chrono::hours(1);
  router r;
  r.websocket("/member", [probe](ws& w) -> proc {
    probe->box.set_value(w.outbox());
    const std::string chunk(16 * 1024, 's');
    while (co_await w.send_text(chunk)) {
    }
    probe->ended.set_value(w.close_code());
  }, o);
  start(std::move(r));
  ws_client c(port(), "/member", 4096);
  ASSERT_TRUE(c.upgraded());
  ws_outbox box = await_value(probe->box);
  const std::string chunk(64 * 1024, 'p');
  int pushes = 0;
  while (box.push_text(chunk)) ++pushes;  // the handler never receives: nothing is taken
  EXPECT_LE(std::size_t(pushes) * (chunk.size() + ws_outbox::per_message_overhead), o.max_outbox);
  EXPECT_EQ(await_value(probe->ended), ws_close::policy);
  EXPECT_EQ(srv_.slow_clients_cut(), 1u);
}

// The other way a slow client is cut, a send blocked past send_timeout, counts and logs too.
TEST_F(WsOutboxTest, SendTimeoutCutIsCountedAndLogged) {
  athanor::testing::log_capture logs;
  auto probe = std::make_shared<member_probe>();
  ws_options o;
  o.max_send_buffer = 64 * 1024;
  o.send_timeout = 200ms;
  router r;
  r.websocket("/flood", [probe](ws& w) -> proc {
    const std::string chunk(16 * 1024, 's');
    while (co_await w.send_text(chunk)) {
    }
    probe->ended.set_value(w.close_code());
  }, o);
  start(std::move(r));
  ws_client c(port(), "/flood", 4096);
  ASSERT_TRUE(c.upgraded());
  EXPECT_EQ(await_value(probe->ended), ws_close::policy);
  EXPECT_EQ(srv_.slow_clients_cut(), 1u);
  std::size_t warnings = 0;
  for (const log_event& e : logs.events())
    if (e.part == "web" && e.level == log_level::warning) {
      ++warnings;
      EXPECT_NE(e.text.find("send_timeout"), std::string::npos) << e.text;
      EXPECT_NE(e.text.find("/flood"), std::string::npos) << e.text;
    }
  EXPECT_EQ(warnings, 1u);
}

// receive_or_mail() writes pushes itself and returns early only for the handler's own mail: the
// outbox's wake-ups never surface as mail.
TEST_F(WsOutboxTest, ReceiveOrMailWritesPushesAndReturnsOnlyForRealMail) {
  struct probe_t {
    std::promise<ws_outbox> box;
    std::promise<pid> self;
    std::atomic<int> mail{0};
    std::promise<int> ended;
  };
  auto probe = std::make_shared<probe_t>();
  router r;
  r.websocket("/mixed", [probe](ws& w) -> proc {
    process& self = this_process();
    probe->box.set_value(w.outbox());
    probe->self.set_value(self.self());
    for (;;) {
      std::optional<ws_message> m = co_await w.receive_or_mail();
      if (!m) break;
      if (m->mailbox) {
        probe->mail.fetch_add(1);
        std::string text = co_await self.receive<std::string>();  // hangs if the wake-up was not mail
        co_await w.send_text("mail: " + text);
      }
    }
    probe->ended.set_value(probe->mail.load());
  });
  start(std::move(r));
  ws_client c(port(), "/mixed");
  ASSERT_TRUE(c.upgraded());
  ws_outbox box = await_value(probe->box);
  pid handler = await_value(probe->self);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(box.push_text("push " + std::to_string(i)));
  for (int i = 0; i < 50; ++i) {
    std::optional<ws_decoder::event> e = c.next();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->data, "push " + std::to_string(i));
  }
  send(handler, std::string("hello"));
  ASSERT_TRUE(box.push_text("after mail"));
  std::vector<std::string> rest;
  for (int i = 0; i < 2; ++i) {
    std::optional<ws_decoder::event> e = c.next();
    ASSERT_TRUE(e);
    rest.push_back(e->data);
  }
  std::sort(rest.begin(), rest.end());
  EXPECT_EQ(rest, (std::vector<std::string>{"after mail", "mail: hello"}));
  c.send_close(1000);
  EXPECT_EQ(c.close_code(), 1000);
  EXPECT_EQ(await_value(probe->ended), 1);
}

// Pushes are compressed like the handler's own sends when permessage-deflate is on.
TEST_F(WsOutboxTest, PushesAreCompressedWithPermessageDeflate) {
  auto probe = std::make_shared<member_probe>();
  start(member_router(probe, ws_options{}));
  ws_client c(port(), "/member", 0, /*deflate=*/true);
  ASSERT_TRUE(c.upgraded());
  EXPECT_NE(c.head().find("permessage-deflate"), std::string::npos) << c.head();
  ws_outbox box = await_value(probe->box);
  std::vector<std::string> sent;
  for (int i = 0; i < 200; ++i) {
    sent.push_back("compressible " + std::to_string(i) + " " + std::string(500, char('a' + i % 26)));
    ASSERT_TRUE(box.push_text(sent.back()));
  }
  for (int i = 0; i < 200; ++i) {
    std::optional<ws_decoder::event> e = c.next();
    ASSERT_TRUE(e);
    ASSERT_EQ(e->k, ws_decoder::event::kind::message);
    EXPECT_EQ(e->data, sent[std::size_t(i)]);
  }
  c.send_close(1000);
  EXPECT_EQ(await_value(probe->ended), 1000);
}

#ifdef ATHANOR_HELLO_BIN
// GET /broadcast on a keep-alive connection; returns the body (the count of members reached).
std::string broadcast(raw_client& http, const std::string& text) {
  http.send("GET /broadcast?text=" + text + " HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got;
  if (!http.read_until(got, "\r\n\r\n", 20s)) return "no answer";
  std::size_t head_end = got.find("\r\n\r\n") + 4;
  std::size_t at = got.find("content-length: ");
  if (at == std::string::npos) return "no length";
  std::size_t n = std::stoul(got.substr(at + 16));
  std::string body = got.substr(head_end);
  if (body.size() < n) body += http.read_n(n - body.size(), 20s);
  return body;
}

// The demo: a member gets each broadcast as a text frame; a member that stops reading under a
// flood of broadcasts is cut with 1008 and stops counting as reached, while a reading member
// keeps getting them.
TEST(WsOutboxHello, BroadcastReachesMembersAndCutsOneThatDoesNotRead) {
  hello_process hello("--host 127.0.0.1");  // its /broadcast and /echo?join=1 are the demo
  ASSERT_NE(hello.port(), 0) << "athanor-hello did not start";
  ws_client reader(hello.port(), "/echo?join=1");
  ASSERT_TRUE(reader.upgraded());
  raw_client http(hello.port());
  // Joining happens in the member's process after the upgrade: broadcast until it counts.
  std::string n;
  for (int i = 0; i < 100000 && (n = broadcast(http, "hello")) != "1"; ++i) {
  }
  ASSERT_EQ(n, "1");
  for (;;) {  // any earlier broadcast that reached it comes first
    std::optional<ws_decoder::event> e = reader.next();
    ASSERT_TRUE(e);
    ASSERT_EQ(e->op, ws_opcode::text);
    if (e->data == "hello") break;
  }
  ws_client slow(hello.port(), "/echo?join=1");
  ASSERT_TRUE(slow.upgraded());
  for (int i = 0; i < 100000 && (n = broadcast(http, "x")) != "2"; ++i) {
    std::optional<ws_decoder::event> e = reader.next();
    ASSERT_TRUE(e);
    ASSERT_EQ(e->data, "x");
  }
  ASSERT_EQ(n, "2");
  ASSERT_EQ(reader.next()->data, "x");
  // 7 KiB broadcasts until the slow member is cut: its outbox (1 MiB) fills behind its socket.
  const std::string big(7 * 1024, 'b');
  int rounds = 0;
  for (; rounds < 100000; ++rounds) {
    n = broadcast(http, big);
    std::optional<ws_decoder::event> e = reader.next();  // the reading member gets every one
    ASSERT_TRUE(e);
    ASSERT_EQ(e->data, big);
    if (n != "2") break;
  }
  EXPECT_EQ(n, "1") << "after " << rounds << " rounds";
  EXPECT_EQ(slow.close_code(), ws_close::policy);
  EXPECT_EQ(broadcast(http, "still"), "1");
  EXPECT_EQ(reader.next()->data, "still");
}
#endif

}  // namespace
}  // namespace athanor::web::testing
