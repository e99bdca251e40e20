// The WebSocket server driven by the `ws` npm client (tests/web/js/ws_client.js) and, for what a
// conforming client never sends (unmasked frames, bad upgrades), by a raw socket.
#include <future>
#include <thread>

#include "web_test_util.h"

namespace athanor::web::testing {
namespace {

router ws_router() {
  router r;
  r.websocket("/echo", [](ws& w) -> proc {
    for (;;) {
      std::optional<ws_message> m = co_await w.receive();
      if (!m) break;
      if (m->is_text() && m->data == "close-please") {
        co_await w.close(4002, "as requested");
        break;
      }
      co_await w.send(std::move(*m));
    }
  });
  ws_options small;
  small.limits.max_message = 4096;
  small.limits.max_frame = 4096;
  r.websocket("/small", [](ws& w) -> proc {
    for (;;) {
      std::optional<ws_message> m = co_await w.receive();
      if (!m) break;
      co_await w.send(std::move(*m));
    }
  }, small);
  ws_options guarded;
  guarded.allowed_origins = {"https://good.example"};
  r.websocket("/guarded", [](ws& w) -> proc {
    std::optional<ws_message> m = co_await w.receive();
    (void)m;
  }, guarded);
  r.websocket("/room/:id", [](ws& w) -> proc {
    co_await w.send_text("room " + w.param("id") + " " + w.path() + " " + w.query());
    std::optional<ws_message> m = co_await w.receive();
    (void)m;
  });
  return r;
}

class WsTest : public WebTest {
 protected:
  void node(const std::string& scenario, const std::string& path = "/echo") {
    auto r = sh("node '" + js_dir() + "/ws_client.js' " + scenario + " ws://127.0.0.1:" + std::to_string(port()) + path + " 2>&1");
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out.rfind("OK " + scenario, 0), 0u) << r.out;
  }
  void SetUp() override {
    WebTest::SetUp();
    if (!have_tool("node") || !have_tool("npm")) GTEST_SKIP() << "node/npm are not installed (scripts/install-deps.sh --test installs them)";
    if (!ensure_node_modules()) GTEST_SKIP() << "npm ci failed in tests/web/js (offline without node_modules?)";
    start(ws_router());
  }
};

TEST_F(WsTest, NodeClientTextAndBinaryEcho) { node("echo"); }
TEST_F(WsTest, NodeClientFragmentedMessage) { node("fragments"); }
TEST_F(WsTest, NodeClientPingGetsPong) { node("ping"); }
TEST_F(WsTest, NodeClientCloseCodeIsEchoed) { node("close_code"); }
TEST_F(WsTest, NodeClientInvalidUtf8Closes1007) { node("bad_utf8"); }
TEST_F(WsTest, NodeClientTooBigMessageCloses1009) { node("too_big", "/small"); }
TEST_F(WsTest, ServerInitiatedCloseWithCode) { node("server_close"); }
TEST_F(WsTest, NodeClientPermessageDeflate) { node("deflate"); }
TEST_F(WsTest, NodeClientBurstKeepsOrder) { node("burst"); }

// ---- raw socket: what conforming clients never send ------------------------------------------

std::string upgrade_request(std::string_view path, std::string_view extra = "") {
  std::string r = "GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  r += extra;
  r += "\r\n";
  return r;
}

class WsRawTest : public WebTest {
 protected:
  void SetUp() override {
    WebTest::SetUp();
    start(ws_router());
  }
  // Upgrades `c`; returns the bytes after the 101 head.
  std::string upgrade(raw_client& c, std::string_view path = "/echo") {
    c.send(upgrade_request(path));
    std::string got;
    EXPECT_TRUE(c.read_until(got, "\r\n\r\n"));
    EXPECT_EQ(got.rfind("HTTP/1.1 101", 0), 0u) << got;
    EXPECT_NE(got.find("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos) << got;
    return got.substr(got.find("\r\n\r\n") + 4);
  }
  // Reads one server frame's header + payload; returns {opcode, payload}.
  std::pair<int, std::string> read_frame(raw_client& c, std::string& buf) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (buf.size() >= 2) {
        std::size_t len = std::uint8_t(buf[1]) & 0x7f, hdr = 2;
        if (len == 126 && buf.size() >= 4) {
          len = (std::size_t(std::uint8_t(buf[2])) << 8) | std::uint8_t(buf[3]);
          hdr = 4;
        }
        if (len < 126 || hdr == 4) {
          if (buf.size() >= hdr + len) {
            std::pair<int, std::string> f{std::uint8_t(buf[0]) & 0x0f, buf.substr(hdr, len)};
            buf.erase(0, hdr + len);
            return f;
          }
        }
      }
      std::string more = c.read_n(1, 1000ms);
      if (more.empty()) break;
      buf += more;
    }
    return {-1, ""};
  }
};

std::string masked(ws_opcode op, std::string_view payload, bool fin = true) {
  std::string f;
  ws_encode_frame(f, op, payload, fin, false, 0x11223344u);
  return f;
}

TEST_F(WsRawTest, UnmaskedClientFrameCloses1002) {
  raw_client c(port());
  std::string buf = upgrade(c);
  std::string f;
  ws_encode_frame(f, ws_opcode::text, "no mask");
  c.send(f);
  auto [op, payload] = read_frame(c, buf);
  EXPECT_EQ(op, 8);
  ASSERT_GE(payload.size(), 2u);
  EXPECT_EQ((std::uint8_t(payload[0]) << 8) | std::uint8_t(payload[1]), 1002);
  EXPECT_TRUE(c.closed_within(2000ms));
}

TEST_F(WsRawTest, ControlFramesInterleaveWithFragments) {
  raw_client c(port());
  std::string buf = upgrade(c);
  c.send(masked(ws_opcode::text, "Hel", false) + masked(ws_opcode::ping, "p1") + masked(ws_opcode::continuation, "lo", true));
  auto pong = read_frame(c, buf);
  EXPECT_EQ(pong.first, 10);
  EXPECT_EQ(pong.second, "p1");
  auto echo = read_frame(c, buf);
  EXPECT_EQ(echo.first, 1);
  EXPECT_EQ(echo.second, "Hello");
  c.send(masked(ws_opcode::close, std::string("\x03\xe8", 2)));
  auto close = read_frame(c, buf);
  EXPECT_EQ(close.first, 8);
  EXPECT_EQ(close.second, std::string("\x03\xe8", 2));
  EXPECT_TRUE(c.closed_within(2000ms));
}

TEST_F(WsRawTest, FramesSentWithTheUpgradeRequestAreAnsweredWithoutMoreInput) {
  // Issue 12, bug 3: a client may send its first frames in the same write as the upgrade request;
  // the server must decode what it already holds instead of waiting for more bytes.
  raw_client c(port());
  c.send(upgrade_request("/echo") + masked(ws_opcode::text, "early") + masked(ws_opcode::ping, "p0"));
  std::string got;
  ASSERT_TRUE(c.read_until(got, "\r\n\r\n"));
  ASSERT_EQ(got.rfind("HTTP/1.1 101", 0), 0u) << got;
  std::string buf = got.substr(got.find("\r\n\r\n") + 4);
  auto echo = read_frame(c, buf);  // nothing more is sent until both answers are in
  EXPECT_EQ(echo.first, 1);
  EXPECT_EQ(echo.second, "early");
  auto pong = read_frame(c, buf);
  EXPECT_EQ(pong.first, 10);
  EXPECT_EQ(pong.second, "p0");
  c.send(masked(ws_opcode::close, std::string("\x03\xe8", 2)));
  EXPECT_EQ(read_frame(c, buf).first, 8);
}

TEST_F(WsRawTest, BadUpgradesAreRefused) {
  {
    raw_client c(port());  // a plain GET on a WebSocket route
    c.send("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(c.read_all().rfind("HTTP/1.1 426", 0), 0u);
  }
  {
    raw_client c(port());  // wrong version
    std::string req = upgrade_request("/echo");
    req.replace(req.find("Version: 13"), 11, "Version: 8");
    c.send(req);
    std::string got = c.read_all();
    EXPECT_EQ(got.rfind("HTTP/1.1 426", 0), 0u) << got;
    EXPECT_NE(got.find("sec-websocket-version: 13"), std::string::npos);
  }
  {
    raw_client c(port());  // malformed key
    std::string req = upgrade_request("/echo");
    req.replace(req.find("dGhl"), 4, "%%%%");
    c.send(req);
    EXPECT_EQ(c.read_all().rfind("HTTP/1.1 400", 0), 0u);
  }
  {
    raw_client c(port());  // Origin not allowed
    c.send(upgrade_request("/guarded", "Origin: https://evil.example\r\n"));
    EXPECT_EQ(c.read_all().rfind("HTTP/1.1 403", 0), 0u);
  }
  {
    raw_client c(port());  // Origin allowed
    c.send(upgrade_request("/guarded", "Origin: https://good.example\r\n"));
    std::string got;
    EXPECT_TRUE(c.read_until(got, "\r\n\r\n"));
    EXPECT_EQ(got.rfind("HTTP/1.1 101", 0), 0u) << got;
  }
}

TEST_F(WsRawTest, RouteParamsAndQueryReachTheHandler) {
  raw_client c(port());
  c.send(upgrade_request("/room/42?user=ann"));
  std::string got;
  ASSERT_TRUE(c.read_until(got, "\r\n\r\n"));
  std::string buf = got.substr(got.find("\r\n\r\n") + 4);
  auto f = read_frame(c, buf);
  EXPECT_EQ(f.second, "room 42 /room/42 user=ann");
}

TEST_F(WsRawTest, EachConnectionIsItsOwnProcess) {
  std::size_t before = process_count();
  raw_client a(port()), b(port());
  upgrade(a);
  upgrade(b);
  // Two WebSocket processes more than before (the HTTP processes handed over and ended).
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (process_count() != before + 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(process_count(), before + 2);
  EXPECT_EQ(srv_.connections(), 2u);
}

// receive_or_mail() returns for process messages too; ping(), is_open(), compressed().
TEST(WsMailbox, ReceiveOrMailWakesForProcessMessages) {
  runtime rt(runtime_config{.schedulers = 2});
  std::promise<pid> handler_pid;
  std::atomic<int> flags{0};
  router r;
  r.websocket("/mail", [&](ws& w) -> proc {
    process& self = this_process();
    if (w.is_open() && !w.compressed()) flags |= 1;
    bool pinged = co_await w.ping("hb");
    if (pinged) flags |= 2;
    handler_pid.set_value(self.self());
    for (;;) {
      std::optional<ws_message> m = co_await w.receive_or_mail();
      if (!m) break;
      if (m->mailbox) {
        std::string text = co_await self.receive<std::string>();
        co_await w.send_text("mail: " + text);
      }
    }
    if (!w.is_open()) flags |= 4;
  });
  server_config cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  server srv = listen(cfg, std::move(r));
  {
    raw_client c(srv.port());
    c.send(upgrade_request("/mail"));
    std::string got;
    ASSERT_TRUE(c.read_until(got, "\r\n\r\n"));
    auto fut = handler_pid.get_future();
    ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
    send(fut.get(), std::string("hello"));
    // The ping (opcode 9, "hb") then the text frame.
    std::string expect_ping = std::string("\x89\x02hb", 4);
    std::string expect_text = std::string("\x81\x0bmail: hello", 13);
    ASSERT_TRUE(c.read_until(got, expect_text)) << got;
    EXPECT_NE(got.find(expect_ping), std::string::npos);
    c.send(masked(ws_opcode::close, std::string("\x03\xe8", 2)));
    EXPECT_TRUE(c.closed_within(2000ms));
  }
  srv.stop(1000ms);
  EXPECT_EQ(flags.load(), 7);
}

// A reader that never reads: the server's sends fill the socket, then the connection is closed
// with 1008 once max_send_buffer is exceeded for longer than send_timeout.
TEST(WsBackpressure, SlowReaderIsClosedNotBufferedWithoutBound) {
  runtime rt(runtime_config{.schedulers = 2});
  std::atomic<int> sent{0};
  std::atomic<int> code{0};
  router r;
  ws_options o;
  o.max_send_buffer = 64 * 1024;
  o.send_timeout = 300ms;
  r.websocket("/flood", [&](ws& w) -> proc {
    std::string chunk(16 * 1024, 'f');
    for (int i = 0; i < 100000; ++i) {
      bool ok = co_await w.send_text(chunk);
      if (!ok) break;
      sent.fetch_add(1);
    }
    code = w.close_code();
  }, o);
  server_config cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  server srv = listen(cfg, std::move(r));
  {
    raw_client c(srv.port());
    int small = 4096;
    ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    c.send(upgrade_request("/flood"));
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (code.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    EXPECT_EQ(code.load(), 1008);
    // Bounded: what the kernel buffers plus max_send_buffer, not 100000 × 16 KiB.
    EXPECT_LT(sent.load(), 400);
  }
  srv.stop(1000ms);
}

// Server shutdown closes WebSockets with 1001 (going away).
TEST_F(WsRawTest, StopClosesWebSocketsWith1001) {
  raw_client c(port());
  std::string buf = upgrade(c);
  std::thread stopper([&] { srv_.stop(3000ms); });
  auto f = read_frame(c, buf);
  stopper.join();
  EXPECT_EQ(f.first, 8);
  ASSERT_GE(f.second.size(), 2u);
  EXPECT_EQ((std::uint8_t(f.second[0]) << 8) | std::uint8_t(f.second[1]), 1001);
}

// ---- ws_options::accept: refuse before the 101, choose a subprotocol, hand state over ----------

// The handler of every accepting route below: counts its runs, then reports what it was handed.
router::ws_handler reporting_handler(std::atomic<int>* runs) {
  return [runs](ws& w) -> proc {
    runs->fetch_add(1);
    std::string* state = std::any_cast<std::string>(&w.accepted());
    co_await w.send_text("proto=" + std::string(w.subprotocol()) + " state=" + (state ? *state : "<none>"));
    std::optional<ws_message> m = co_await w.receive();
    (void)m;
  };
}

router accept_router(std::atomic<int>* runs) {
  router r;
  ws_options deny;
  deny.accept = [](const ws_request&) { return ws_accept{.refuse_status = 403, .refuse_body = "no token\n"}; };
  r.websocket("/deny", reporting_handler(runs), deny);
  // Phoenix's choice: accept "phoenix" when offered and take the token offered next to it.
  ws_options phx;
  phx.accept = [](const ws_request& req) {
    ws_accept a;
    constexpr std::string_view prefix = "base64url.bearer.phx.";
    for (std::string_view p : req.subprotocols) {
      if (p == "phoenix") a.subprotocol = "phoenix";
      if (p.starts_with(prefix)) a.state = std::string(p.substr(prefix.size()));
    }
    return a;
  };
  r.websocket("/phx", reporting_handler(runs), phx);
  ws_options bogus;
  bogus.accept = [](const ws_request&) { return ws_accept{.subprotocol = "not-offered"}; };
  r.websocket("/bogus", reporting_handler(runs), bogus);
  ws_options throws;
  throws.accept = [](const ws_request&) -> ws_accept { throw std::runtime_error("hook failed"); };
  r.websocket("/throws", reporting_handler(runs), throws);
  ws_options echo;
  echo.accept = [](const ws_request& req) {
    std::string room;
    for (const auto& [k, v] : req.route_params)
      if (k == "id") room = v;
    std::string seen = std::string(req.path) + "|" + std::string(req.query) + "|" + room + "|" +
                       std::string(req.header("X-Token")) + "|" + std::string(req.header("x-absent")) + "|" +
                       (req.peer.rfind("127.0.0.1:", 0) == 0 ? "peer" : "no-peer:" + req.peer);
    return ws_accept{.state = std::move(seen)};
  };
  r.websocket("/seen/:id", reporting_handler(runs), echo);
  r.websocket("/plain", reporting_handler(runs));  // no hook
  return r;
}

class WsAcceptTest : public WsRawTest {
 protected:
  void SetUp() override {
    WebTest::SetUp();
    start(accept_router(&runs_));
  }
  // Sends an upgrade for `path` with `extra` headers; returns the response head, and the first
  // frame's payload in `frame` when it is a 101.
  std::string upgrade_with(std::string_view path, std::string_view extra, std::string* frame = nullptr) {
    raw_client c(port());
    c.send(upgrade_request(path, extra));
    std::string got;
    EXPECT_TRUE(c.read_until(got, "\r\n\r\n")) << got;
    std::string head = got.substr(0, got.find("\r\n\r\n") + 4);
    if (frame && head.rfind("HTTP/1.1 101", 0) == 0) {
      std::string buf = got.substr(head.size());
      *frame = read_frame(c, buf).second;
      c.send(masked(ws_opcode::close, std::string("\x03\xe8", 2)));
      EXPECT_TRUE(c.closed_within(2000ms));
    }
    return head;
  }
  std::atomic<int> runs_{0};
};

TEST_F(WsAcceptTest, RefusalAnswersTheHooksStatusAndNoHandlerRuns) {
  raw_client c(port());
  c.send(upgrade_request("/deny"));
  std::string got = c.read_all();  // the server closes after the refusal
  EXPECT_EQ(got.rfind("HTTP/1.1 403", 0), 0u) << got;
  EXPECT_NE(got.find("\r\n\r\nno token\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("sec-websocket-accept"), std::string::npos) << got;
  // A refusal spawns nothing: the handler cannot run later either.
  EXPECT_EQ(runs_.load(), 0);
}

TEST_F(WsAcceptTest, ChosenSubprotocolIsNamedInThe101AndStateReachesTheHandler) {
  std::string frame;
  std::string head = upgrade_with("/phx", "Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.czNjcmV0\r\n", &frame);
  EXPECT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nsec-websocket-protocol: phoenix\r\n"), std::string::npos) << head;
  EXPECT_EQ(frame, "proto=phoenix state=czNjcmV0");
  EXPECT_EQ(runs_.load(), 1);
}

TEST_F(WsAcceptTest, NoSubprotocolChosenMeansNoHeader) {
  std::string frame;
  // The hook finds no "phoenix" offered: it selects nothing (and still hands state over).
  std::string head = upgrade_with("/phx", "Sec-WebSocket-Protocol: base64url.bearer.phx.abc\r\n", &frame);
  EXPECT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  EXPECT_EQ(head.find("sec-websocket-protocol"), std::string::npos) << head;
  EXPECT_EQ(frame, "proto= state=abc");
  // No hook: as before the hook existed, nothing selected and nothing handed over.
  head = upgrade_with("/plain", "Sec-WebSocket-Protocol: phoenix\r\n", &frame);
  EXPECT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  EXPECT_EQ(head.find("sec-websocket-protocol"), std::string::npos) << head;
  EXPECT_EQ(frame, "proto= state=<none>");
}

TEST_F(WsAcceptTest, SubprotocolNotOfferedOrThrowingHookAnswers500) {
  for (const char* path : {"/bogus", "/throws"}) {
    raw_client c(port());
    c.send(upgrade_request(path, "Sec-WebSocket-Protocol: phoenix\r\n"));
    std::string got = c.read_all();
    EXPECT_EQ(got.rfind("HTTP/1.1 500", 0), 0u) << path << ": " << got;
  }
  EXPECT_EQ(runs_.load(), 0);
}

TEST_F(WsAcceptTest, PathQueryParamsHeadersAndPeerReachTheHook) {
  std::string frame;
  std::string head = upgrade_with("/seen/42?vsn=2.0.0&token=t", "x-token: abc\r\n", &frame);
  EXPECT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
  EXPECT_EQ(frame, "proto= state=/seen/42|vsn=2.0.0&token=t|42|abc||peer");
}

TEST(WsRequest, SubprotocolsAreSplitTrimmedAndKeptInOrderAcrossHeaderLines) {
  request_head h;
  h.path = "/p";
  h.headers = {{"sec-websocket-protocol", " a ,b,\t,c\t"}, {"origin", "o"}, {"sec-websocket-protocol", "d"}};
  param_list params;
  ws_request r(h, params);
  EXPECT_EQ(r.subprotocols, (std::vector<std::string_view>{"a", "b", "c", "d"}));
  EXPECT_EQ(r.header("Origin"), "o");
  EXPECT_EQ(r.header("cookie"), "");
  EXPECT_EQ(r.path, "/p");
  EXPECT_EQ(r.peer, "");
}

}  // namespace
}  // namespace athanor::web::testing
