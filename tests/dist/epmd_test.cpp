// The EPMD client against a real `epmd` (started by the test on a port of its own), the embedded
// server against raw sockets and against real epmd's bytes, and ensure_epmd's keeper: embedding a
// server when none runs, and taking the port over when the EPMD holding it dies.
#include "athanor/dist/epmd.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <future>
#include <set>

#include "athanor/runtime/process.h"
#include "athanor/runtime/runtime.h"
#include "epmd_test_util.h"

namespace athanor::dist {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using namespace testing;

// A runtime per test. run() runs a coroutine in a process and waits for it (60 s at most); an
// exception escaping it fails the test. Processes left over (servers, keepers) end with the runtime.
class EpmdTest : public ::testing::Test {
 protected:
  void SetUp() override { rt_ = std::make_unique<runtime>(runtime_config{.schedulers = 2}); }
  void TearDown() override { rt_.reset(); }

  template <class F>
  void run(F body) {
    auto done = std::make_shared<std::promise<std::string>>();
    std::future<std::string> result = done->get_future();
    spawn([body = std::move(body), done](process& self) mutable -> proc {
      std::string error;
      try {
        co_await body(self);
      } catch (const std::exception& e) {
        error = e.what();
      }
      done->set_value(error);
    });
    ASSERT_EQ(result.wait_for(60s), std::future_status::ready) << "the test process did not finish within 60 s";
    std::string error = result.get();
    EXPECT_EQ(error, "") << "the test process threw";
  }

  std::unique_ptr<runtime> rt_;
};

epmd_node hidden_node(std::string name, std::uint16_t port) {
  return epmd_node{.name = std::move(name), .port = port, .node_type = epmd_hidden_node, .protocol = 0,
                   .highest_version = 6, .lowest_version = 6, .extra = ""};
}

std::string alive2_bytes(const epmd_node& n) { return encode_epmd_request(alive2_request{n}); }
std::string port_please_bytes(const std::string& name) { return encode_epmd_request(port_please2_request{name}); }

// What a server answers PORT_PLEASE2 for `name`, over a raw connection.
std::optional<epmd_node> raw_port_please(std::uint16_t port, const std::string& name) {
  return parse_port2_response(raw_exchange(port, port_please_bytes(name))).node;
}

epmd_server_config test_server(std::uint16_t port = 0) {
  epmd_server_config c;
  c.addresses = {"127.0.0.1"};
  c.port = port;
  return c;
}

bool has_name(const names_response& r, const std::string& name) {
  for (const auto& e : r.nodes)
    if (e.name == name) return true;
  return false;
}

// ---- the client against real epmd, and against the embedded server ----

// Register, look up, list, refuse a duplicate, unregister by closing: the same scenario against
// whatever EPMD listens on `port`.
task<void> client_scenario(std::uint16_t port) {
  epmd_address at{.host = "127.0.0.1", .port = port};
  std::string name = unique_name("cl");
  epmd_node me = hidden_node(name, 40123);
  me.extra = "xyz";
  epmd_registration reg = co_await epmd_register(me, at);
  EXPECT_TRUE(reg.is_open());
  EXPECT_TRUE(reg.extended());
  EXPECT_NE(reg.creation(), 0u);
  EXPECT_FALSE(reg.lost());

  std::optional<epmd_node> found = co_await epmd_port_please(name, at);
  EXPECT_TRUE(found.has_value());
  if (found) EXPECT_EQ(*found, me);
  EXPECT_FALSE((co_await epmd_port_please("Nonexistent", at)).has_value());

  names_response names = co_await epmd_names(at);
  EXPECT_EQ(names.epmd_port, port);
  EXPECT_TRUE(has_name(names, name));

  std::string refused;
  try {
    epmd_registration again = co_await epmd_register(hidden_node(name, 40124), at);
  } catch (const epmd_registration_refused& e) {
    refused = std::to_string(e.result()) + " " + e.name();
  }
  EXPECT_EQ(refused, "1 " + name);
  EXPECT_FALSE(reg.lost());  // the first registration stands

  // An old (version 5) registrant gets ALIVE2_RESP (121) and a creation of 1..3.
  epmd_node old = hidden_node(name + "_v5", 40125);
  old.highest_version = 5;
  old.lowest_version = 5;
  epmd_registration reg5 = co_await epmd_register(old, at);
  EXPECT_FALSE(reg5.extended());
  EXPECT_GE(reg5.creation(), 1u);
  EXPECT_LE(reg5.creation(), 3u);

  // Closing the registration unregisters the node (EPMD notices the close a moment later).
  reg.close();
  EXPECT_TRUE(reg.lost());
  bool gone = false;
  for (int i = 0; i < 2000 && !gone; ++i) {
    gone = !(co_await epmd_port_please(name, at)).has_value();
    if (!gone) co_await this_process().sleep(5ms);
  }
  EXPECT_TRUE(gone) << "still registered after its connection closed";
}

TEST_F(EpmdTest, ClientAgainstRealEpmd) {
  real_epmd epmd(free_port());
  if (!epmd.available()) GTEST_SKIP() << "epmd is not installed";
  run([&](process&) -> task<void> { co_await client_scenario(epmd.port()); });
}

TEST_F(EpmdTest, ClientAgainstEmbeddedServer) {
  epmd_server srv = epmd_server::start(test_server());
  run([&](process&) -> task<void> { co_await client_scenario(srv.port()); });
}

TEST_F(EpmdTest, RegistrationReportsItsLossWhenEpmdDies) {
  real_epmd epmd(free_port());
  if (!epmd.available()) GTEST_SKIP() << "epmd is not installed";
  run([&](process&) -> task<void> {
    epmd_registration reg = co_await epmd_register(hidden_node(unique_name("loss"), 40200), {.port = epmd.port()});
    EXPECT_FALSE(co_await reg.wait_lost(0ms));  // it stands
    epmd.kill();
    EXPECT_TRUE(co_await reg.wait_lost());  // then ends with the daemon
    EXPECT_FALSE(reg.is_open());
  });
}

TEST_F(EpmdTest, NoEpmdIsConnectionRefused) {
  std::uint16_t port = free_port();
  run([&](process&) -> task<void> {
    std::error_code code;
    try {
      (void)co_await epmd_port_please("a", {.port = port});
    } catch (const std::system_error& e) {
      code = e.code();
    }
    EXPECT_EQ(code, std::errc::connection_refused);
  });
}

TEST_F(EpmdTest, SilentEpmdTimesOut) {
  // A listener nobody accepts on: the connection completes (backlog) but no reply ever comes.
  tcp_listener silent = tcp_listener::listen("127.0.0.1", 0);
  std::uint16_t port = silent.port();
  run([&](process&) -> task<void> {
    std::error_code code;
    try {
      (void)co_await epmd_names({.port = port}, 50ms);
    } catch (const std::system_error& e) {
      code = e.code();
    }
    EXPECT_EQ(code, std::errc::timed_out);
  });
}

TEST_F(EpmdTest, HostNamesAreResolved) {
  // The machine's own name, when it resolves (it does on the CI VM: /etc/hosts), is looked up
  // on a dirty thread; an unknown name is EHOSTUNREACH.
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  epmd_server srv = epmd_server::start(test_server());
  run([&](process&) -> task<void> {
    std::error_code code;
    try {
      (void)co_await epmd_names({.host = "no-such-host.invalid", .port = srv.port()});
    } catch (const std::system_error& e) {
      code = e.code();
    }
    EXPECT_EQ(code, std::errc::host_unreachable);
    try {
      names_response r = co_await epmd_names({.host = host, .port = srv.port()});
      EXPECT_EQ(r.epmd_port, srv.port());
    } catch (const std::system_error& e) {
      // The host name does not resolve to loopback here: nothing more to check.
      std::printf("note: %s: %s\n", host, e.what());
    }
  });
}

TEST_F(EpmdTest, InvalidNamesFailInTheCaller) {
  epmd_server srv = epmd_server::start(test_server());
  run([&](process&) -> task<void> {
    int errors = 0;
    try {
      (void)co_await epmd_port_please("bad\nname", {.port = srv.port()});
    } catch (const epmd_error&) {
      ++errors;
    }
    try {
      (void)co_await epmd_register(hidden_node("", 1), {.port = srv.port()});
    } catch (const epmd_error&) {
      ++errors;
    }
    EXPECT_EQ(errors, 2);
  });
}

// ---- the embedded server, byte for byte ----

TEST_F(EpmdTest, ServerAnswersWithRealEpmdBytes) {
  // The same requests to real epmd and to the embedded server: identical PORT2 replies, the same
  // NAMES lines, ALIVE2 replies of the same shape (creations differ by design).
  real_epmd epmd(free_port());
  if (!epmd.available()) GTEST_SKIP() << "epmd is not installed";
  epmd_server srv = epmd_server::start(test_server());
  const epmd_node a{.name = "a", .port = 5555, .node_type = epmd_normal_node, .protocol = 0, .highest_version = 6,
                    .lowest_version = 5, .extra = ""};
  epmd_node b = a;
  b.name = "b";
  b.port = 6666;
  b.highest_version = b.lowest_version = 5;
  b.extra = "e";
  for (std::uint16_t port : {epmd.port(), srv.port()}) {
    SCOPED_TRACE(port == srv.port() ? "embedded server" : "real epmd");
    raw_conn ra(port), rb(port);
    ra.send(alive2_bytes(a));
    alive2_response x = parse_alive2_response(ra.read(6));
    EXPECT_TRUE(x.extended);
    EXPECT_EQ(x.result, 0);
    EXPECT_NE(x.creation, 0u);
    rb.send(alive2_bytes(b));
    alive2_response y = parse_alive2_response(rb.read(4));
    EXPECT_FALSE(y.extended);
    EXPECT_EQ(y.result, 0);
    EXPECT_GE(y.creation, 1u);
    EXPECT_LE(y.creation, 3u);
    // A taken name: 76 01 00 00 00 63. (epmd then leaves the connection open until its idle
    // timeout; the embedded server closes it at once.)
    raw_conn dup(port);
    dup.send(alive2_bytes(a));
    EXPECT_EQ(dup.read(6), "\x76\x01\x00\x00\x00\x63"s);
    if (port == srv.port()) EXPECT_TRUE(dup.closed_by_peer());
    EXPECT_EQ(raw_exchange(port, port_please_bytes("a")), "\x77\x00\x15\xb3\x4d\x00\x00\x06\x00\x05\x00\x01" "a" "\x00\x00"s);
    EXPECT_EQ(raw_exchange(port, port_please_bytes("b")), "\x77\x00\x1a\x0a\x4d\x00\x00\x05\x00\x05\x00\x01" "b" "\x00\x01" "e"s);
    EXPECT_EQ(raw_exchange(port, port_please_bytes("Nonexistent")), "\x77\x01"s);
    std::string names = raw_exchange(port, encode_epmd_request(names_request{}));
    ASSERT_GE(names.size(), 4u);
    EXPECT_EQ(names.substr(0, 4), (std::string{char(0), char(0), char(port >> 8), char(port & 0xFF)}));
    std::multiset<std::string> lines;
    for (const auto& e : parse_names_response(names).nodes) lines.insert(e.name + ":" + std::to_string(e.port));
    EXPECT_EQ(lines, (std::multiset<std::string>{"a:5555", "b:6666"}));
  }
}

TEST_F(EpmdTest, ServerUnregistersWhenTheRegistrationCloses) {
  epmd_server srv = epmd_server::start(test_server());
  {
    raw_conn reg(srv.port());
    reg.send(alive2_bytes(hidden_node("gone", 7000)));
    ASSERT_EQ(parse_alive2_response(reg.read(6)).result, 0);
    EXPECT_TRUE(raw_port_please(srv.port(), "gone").has_value());
    ASSERT_EQ(srv.registered().size(), 1u);
    EXPECT_EQ(srv.registered()[0].node, hidden_node("gone", 7000));
  }
  EXPECT_TRUE(eventually([&] { return !raw_port_please(srv.port(), "gone").has_value(); }));
  EXPECT_TRUE(srv.registered().empty());
  // The name is free again.
  raw_conn again(srv.port());
  again.send(alive2_bytes(hidden_node("gone", 7001)));
  EXPECT_EQ(parse_alive2_response(again.read(6)).result, 0);
}

TEST_F(EpmdTest, ServerDropsARegistrantThatSendsAnything) {
  epmd_server srv = epmd_server::start(test_server());
  raw_conn reg(srv.port());
  reg.send(alive2_bytes(hidden_node("chatty", 7000)));
  ASSERT_EQ(parse_alive2_response(reg.read(6)).result, 0);
  reg.send("\x00\x01n"s);
  EXPECT_TRUE(reg.closed_by_peer());
  EXPECT_TRUE(eventually([&] { return !raw_port_please(srv.port(), "chatty").has_value(); }));
}

TEST_F(EpmdTest, ServerCreationsCountUpAndAreNeverZero) {
  epmd_server srv = epmd_server::start(test_server());
  std::vector<std::unique_ptr<raw_conn>> regs;
  std::vector<std::uint32_t> creations;
  for (int i = 0; i < 5; ++i) {
    regs.push_back(std::make_unique<raw_conn>(srv.port()));
    regs.back()->send(alive2_bytes(hidden_node("n" + std::to_string(i), 7000)));
    alive2_response r = parse_alive2_response(regs.back()->read(6));
    ASSERT_EQ(r.result, 0);
    EXPECT_NE(r.creation, 0u);
    creations.push_back(r.creation);
  }
  for (std::size_t i = 1; i < creations.size(); ++i) {
    std::uint32_t expected = creations[i - 1] + 1;
    if (expected == 0) expected = 1;
    EXPECT_EQ(creations[i], expected);
  }
  // Re-registering a name gives a new creation.
  regs[0].reset();
  ASSERT_TRUE(eventually([&] { return !raw_port_please(srv.port(), "n0").has_value(); }));
  raw_conn again(srv.port());
  again.send(alive2_bytes(hidden_node("n0", 7000)));
  alive2_response r = parse_alive2_response(again.read(6));
  EXPECT_EQ(r.result, 0);
  EXPECT_NE(r.creation, creations[0]);
}

TEST_F(EpmdTest, ServerClosesOnlyTheConnectionThatSendsBadInput) {
  epmd_server_config cfg = test_server();
  cfg.max_request_bytes = 100;
  epmd_server srv = epmd_server::start(cfg);
  raw_conn reg(srv.port());
  reg.send(alive2_bytes(hidden_node("steady", 7000)));
  ASSERT_EQ(parse_alive2_response(reg.read(6)).result, 0);
  const std::vector<std::string> bad = {
      "\x00\x00"s,                                      // Len 0
      "\x00\x65"s + std::string(101, 'n'),             // Len over max_request_bytes
      "\xff\xff"s,                                      // Len 65535
      "\x00\x01q"s,                                     // unknown tag
      "\x00\x01k"s,                                     // KILL_REQ: refused
      "\x00\x01d"s,                                     // DUMP_REQ: not served
      "\x00\x02n!"s,                                    // NAMES with a trailing byte
      "\x00\x01z"s,                                     // PORT_PLEASE2 without a name
      "\x00\x04z\xff\xfe\xfd"s,                         // not UTF-8
      "\x00\x03za\n"s,                                  // a control character
      "\x00\x05x\x00\x01\x48\x00"s,                     // ALIVE2 cut short
      alive2_bytes(hidden_node("ok", 1)).substr(0, 10), // Len promises more than is sent, then close
  };
  for (const std::string& b : bad) {
    raw_conn c(srv.port());
    c.send(b);
    c.shutdown_write();  // the server sees the end of what we send, not a pause
    EXPECT_EQ(c.read_to_end(), "") << "a reply to bad input";
  }
  // The registration and the server are untouched.
  EXPECT_TRUE(raw_port_please(srv.port(), "steady").has_value());
  EXPECT_EQ(parse_names_response(raw_exchange(srv.port(), encode_epmd_request(names_request{}))).nodes.size(), 1u);
  EXPECT_FALSE(raw_port_please(srv.port(), "ok").has_value());
}

TEST_F(EpmdTest, ServerClosesAnIdleRequestConnectionButNotARegistration) {
  epmd_server_config cfg = test_server();
  cfg.request_timeout = 100ms;
  epmd_server srv = epmd_server::start(cfg);
  raw_conn reg(srv.port());
  reg.send(alive2_bytes(hidden_node("patient", 7000)));
  ASSERT_EQ(parse_alive2_response(reg.read(6)).result, 0);
  raw_conn idle(srv.port());
  idle.send("\x00"s);  // half a length prefix, then nothing
  EXPECT_TRUE(idle.closed_by_peer());
  // The registration, older than the idle connection, outlived its timeout.
  EXPECT_TRUE(raw_port_please(srv.port(), "patient").has_value());
}

TEST_F(EpmdTest, ServerCapsOpenRequestConnections) {
  epmd_server_config cfg = test_server();
  cfg.max_connections = 1;
  epmd_server srv = epmd_server::start(cfg);
  auto idle = std::make_unique<raw_conn>(srv.port());
  idle->send("\x00"s);
  // The one slot is taken (the server has accepted `idle` once a second connection is refused).
  ASSERT_TRUE(eventually([&] {
    raw_conn c(srv.port());
    c.send(encode_epmd_request(names_request{}));
    return c.read_to_end().empty();
  }));
  idle.reset();  // frees the slot
  EXPECT_TRUE(eventually([&] { return raw_exchange(srv.port(), encode_epmd_request(names_request{})).size() == 4; }));
  // Registrations do not count against the cap (once registered: one at a time here).
  raw_conn r1(srv.port());
  r1.send(alive2_bytes(hidden_node("r1", 1)));
  ASSERT_EQ(parse_alive2_response(r1.read(6)).result, 0);
  raw_conn r2(srv.port());
  r2.send(alive2_bytes(hidden_node("r2", 2)));
  ASSERT_EQ(parse_alive2_response(r2.read(6)).result, 0);
  EXPECT_TRUE(eventually([&] { return raw_exchange(srv.port(), encode_epmd_request(names_request{})).size() > 4; }));
}

TEST_F(EpmdTest, ServerCapsRegistrations) {
  epmd_server_config cfg = test_server();
  cfg.max_registrations = 2;
  epmd_server srv = epmd_server::start(cfg);
  raw_conn r1(srv.port()), r2(srv.port()), r3(srv.port());
  r1.send(alive2_bytes(hidden_node("r1", 1)));
  EXPECT_EQ(parse_alive2_response(r1.read(6)).result, 0);
  r2.send(alive2_bytes(hidden_node("r2", 2)));
  EXPECT_EQ(parse_alive2_response(r2.read(6)).result, 0);
  r3.send(alive2_bytes(hidden_node("r3", 3)));
  EXPECT_EQ(r3.read_to_end(), "\x76\x01\x00\x00\x00\x63"s);
  EXPECT_EQ(srv.registered().size(), 2u);
}

TEST_F(EpmdTest, StoppedServerReleasesItsPortAndItsRegistrations) {
  epmd_server srv = epmd_server::start(test_server());
  std::uint16_t port = srv.port();
  raw_conn reg(port);
  reg.send(alive2_bytes(hidden_node("held", 7000)));
  ASSERT_EQ(parse_alive2_response(reg.read(6)).result, 0);
  EXPECT_TRUE(srv.running());
  srv.stop();
  EXPECT_FALSE(srv.running());
  EXPECT_FALSE(can_connect(port));             // refused at once
  epmd_server next = epmd_server::start(test_server(port));  // and free to bind at once
  EXPECT_EQ(next.port(), port);
  EXPECT_TRUE(reg.closed_by_peer());           // the registration went with the old server
  srv.stop();                                  // idempotent
}

TEST_F(EpmdTest, ServerRefusesABusyPort) {
  epmd_server first = epmd_server::start(test_server());
  std::error_code code;
  try {
    epmd_server second = epmd_server::start(test_server(first.port()));
  } catch (const std::system_error& e) {
    code = e.code();
  }
  EXPECT_EQ(code, std::errc::address_in_use);
  EXPECT_THROW((void)epmd_server::start(epmd_server_config{.addresses = {}, .port = 0}), std::invalid_argument);
  EXPECT_THROW((void)epmd_server::start(epmd_server_config{.addresses = {"::1"}, .port = 0}), std::system_error);
}

// Puts an environment variable back as it was when this goes.
class saved_env {
 public:
  explicit saved_env(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) value_ = v;
  }
  ~saved_env() {
    if (value_) ::setenv(name_, value_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> value_;
};

TEST(EpmdSettings, PortAndAddressesFromTheEnvironment) {
  // (No runtime: nothing else reads the environment meanwhile.)
  saved_env port_var("ERL_EPMD_PORT"), address_var("ERL_EPMD_ADDRESS");
  ::unsetenv("ERL_EPMD_PORT");
  EXPECT_EQ(default_epmd_port(), 4369);
  ::setenv("ERL_EPMD_PORT", "4370", 1);
  EXPECT_EQ(default_epmd_port(), 4370);
  EXPECT_EQ(epmd_address{}.port, 4370);
  EXPECT_EQ(epmd_server_config{}.port, 4370);
  for (const char* bad : {"0", "65536", "43x", "-1", " 4370"}) {
    ::setenv("ERL_EPMD_PORT", bad, 1);
    EXPECT_THROW(default_epmd_port(), epmd_error) << bad;
  }
  ::unsetenv("ERL_EPMD_PORT");

  ::unsetenv("ERL_EPMD_ADDRESS");
  EXPECT_EQ(default_epmd_addresses(), std::vector<std::string>{"127.0.0.1"});
  ::setenv("ERL_EPMD_ADDRESS", "10.1.2.3, ::1,10.1.2.3 192.168.0.1", 1);
  EXPECT_EQ(default_epmd_addresses(), (std::vector<std::string>{"10.1.2.3", "192.168.0.1", "127.0.0.1"}));
  ::setenv("ERL_EPMD_ADDRESS", "10.1.2.3,0.0.0.0", 1);
  EXPECT_EQ(default_epmd_addresses(), std::vector<std::string>{"0.0.0.0"});
  ::unsetenv("ERL_EPMD_ADDRESS");
}

// ---- ensure_epmd: embedding, sharing, taking over ----

struct quit {};
struct keeper_up {
  std::string name;
  pid keeper;
  std::uint32_t creation;
  bool started_server;
};

// A node process: registers `name` through ensure_epmd, reports to `test`, then keeps the
// registration until it receives `quit` (or is killed).
pid spawn_node(pid test, std::string name, std::uint16_t node_port, epmd_options options) {
  return spawn([test, name, node_port, options](process& self) -> proc {
    epmd_keeper k = co_await ensure_epmd(hidden_node(name, node_port), options);
    send(test, keeper_up{name, k.keeper(), k.creation(), k.started_server()});
    co_await self.receive<quit>();
  });
}

epmd_options keeper_options(std::uint16_t port, pid notify = {}) {
  epmd_options o;
  o.epmd = {.host = "127.0.0.1", .port = port};
  o.server.addresses = {"127.0.0.1"};
  o.max_retry_interval = 200ms;
  o.notify = notify;
  return o;
}

TEST_F(EpmdTest, EnsureEpmdEmbedsAServerWhenNoneRunsAndOthersShareIt) {
  std::uint16_t port = free_port();
  run([&](process& self) -> task<void> {
    pid a = spawn_node(self.self(), "first", 9001, keeper_options(port));
    keeper_up ua = co_await self.receive<keeper_up>();
    EXPECT_TRUE(ua.started_server);
    EXPECT_NE(ua.creation, 0u);
    pid b = spawn_node(self.self(), "second", 9002, keeper_options(port));
    keeper_up ub = co_await self.receive<keeper_up>();
    EXPECT_FALSE(ub.started_server);  // the first node's server answered
    names_response names = co_await epmd_names({.port = port});
    EXPECT_TRUE(has_name(names, "first"));
    EXPECT_TRUE(has_name(names, "second"));
    std::optional<epmd_node> second = co_await epmd_port_please("second", {.port = port});
    EXPECT_TRUE(second && second->port == 9002);
    send(b, quit{});
    send(a, quit{});
  });
}

TEST_F(EpmdTest, EnsureEpmdUsesARunningEpmd) {
  real_epmd epmd(free_port());
  if (!epmd.available()) GTEST_SKIP() << "epmd is not installed";
  run([&](process& self) -> task<void> {
    pid a = spawn_node(self.self(), "on_real", 9001, keeper_options(epmd.port()));
    keeper_up ua = co_await self.receive<keeper_up>();
    EXPECT_FALSE(ua.started_server);
    std::optional<epmd_node> found = co_await epmd_port_please("on_real", {.port = epmd.port()});
    EXPECT_TRUE(found && found->port == 9001);
    send(a, quit{});
  });
}

TEST_F(EpmdTest, EnsureEpmdRefusesATakenName) {
  epmd_server srv = epmd_server::start(test_server());
  run([&](process&) -> task<void> {
    epmd_registration holder = co_await epmd_register(hidden_node("taken", 1), {.port = srv.port()});
    std::string what;
    try {
      epmd_keeper k = co_await ensure_epmd(hidden_node("taken", 2), keeper_options(srv.port()));
    } catch (const epmd_registration_refused& e) {
      what = e.name();
    }
    EXPECT_EQ(what, "taken");
    std::optional<epmd_node> found = co_await epmd_port_please("taken", {.port = srv.port()});
    EXPECT_TRUE(found && found->port == 1);  // the holder's, untouched
  });
}

TEST_F(EpmdTest, EnsureEpmdWithoutEmbeddingFailsWhenNoEpmdRuns) {
  std::uint16_t port = free_port();
  run([&](process&) -> task<void> {
    epmd_options o = keeper_options(port);
    o.embed_server = false;
    std::error_code code;
    try {
      epmd_keeper k = co_await ensure_epmd(hidden_node("lonely", 1), o);
    } catch (const std::system_error& e) {
      code = e.code();
    }
    EXPECT_EQ(code, std::errc::connection_refused);
    EXPECT_FALSE(can_connect(port));  // and no server was started
  });
}

TEST_F(EpmdTest, KeeperUnregistersWhenItsNodeEnds) {
  epmd_server srv = epmd_server::start(test_server());
  run([&](process& self) -> task<void> {
    pid a = spawn_node(self.self(), "mortal", 9001, keeper_options(srv.port()));
    keeper_up ua = co_await self.receive<keeper_up>();
    EXPECT_FALSE(ua.started_server);
    EXPECT_TRUE((co_await epmd_port_please("mortal", {.port = srv.port()})).has_value());
    monitor(ua.keeper);
    exit(a, atoms::kill);                 // the node dies...
    down d = co_await self.receive<down>();  // ...its keeper follows...
    EXPECT_EQ(d.from, ua.keeper);
  });
  // ...and the registration goes with it.
  EXPECT_TRUE(eventually([&] { return srv.registered().empty(); }));
}

TEST_F(EpmdTest, KeeperStopUnregisters) {
  epmd_server srv = epmd_server::start(test_server());
  run([&](process&) -> task<void> {
    epmd_keeper k = co_await ensure_epmd(hidden_node("stopper", 1), keeper_options(srv.port()));
    EXPECT_EQ(srv.registered().size(), 1u);
    epmd_keeper moved = std::move(k);
    EXPECT_FALSE(k.keeper());
    moved.stop();
    moved.stop();
  });
  EXPECT_TRUE(eventually([&] { return srv.registered().empty(); }));
}

TEST_F(EpmdTest, TakeoverWhenTheNodeHoldingThePortDies) {
  // Node A embeds the server; node B registers with it. A dies: its server goes, B's
  // registration drops, B becomes the server and registers again; lookups find B, not A.
  std::uint16_t port = free_port();
  run([&](process& self) -> task<void> {
    pid a = spawn_node(self.self(), "holder", 9001, keeper_options(port));
    keeper_up ua = co_await self.receive<keeper_up>();
    EXPECT_TRUE(ua.started_server);
    pid b = spawn_node(self.self(), "survivor", 9002, keeper_options(port, self.self()));
    keeper_up ub = co_await self.receive<keeper_up>();
    EXPECT_FALSE(ub.started_server);

    exit(a, atoms::kill);
    epmd_registration_lost lost = co_await self.receive<epmd_registration_lost>();
    EXPECT_EQ(lost.keeper, ub.keeper);
    EXPECT_FALSE(lost.reason.empty());
    epmd_reregistered again = co_await self.receive<epmd_reregistered>();
    EXPECT_EQ(again.keeper, ub.keeper);
    EXPECT_TRUE(again.serving);
    EXPECT_NE(again.creation, 0u);

    std::optional<epmd_node> found = co_await epmd_port_please("survivor", {.port = port});
    EXPECT_TRUE(found && found->port == 9002);
    EXPECT_FALSE((co_await epmd_port_please("holder", {.port = port})).has_value());
    // A newcomer now registers with the survivor's server.
    pid c = spawn_node(self.self(), "newcomer", 9003, keeper_options(port));
    keeper_up uc = co_await self.receive<keeper_up>();
    EXPECT_FALSE(uc.started_server);
    send(c, quit{});
    send(b, quit{});
  });
}

TEST_F(EpmdTest, TakeoverWhenRealEpmdDies) {
  real_epmd epmd(free_port());
  if (!epmd.available()) GTEST_SKIP() << "epmd is not installed";
  run([&](process& self) -> task<void> {
    pid b = spawn_node(self.self(), "orphan", 9002, keeper_options(epmd.port(), self.self()));
    keeper_up ub = co_await self.receive<keeper_up>();
    EXPECT_FALSE(ub.started_server);
    epmd.kill();
    (void)co_await self.receive<epmd_registration_lost>();
    epmd_reregistered again = co_await self.receive<epmd_reregistered>();
    EXPECT_TRUE(again.serving);
    std::optional<epmd_node> found = co_await epmd_port_please("orphan", {.port = epmd.port()});
    EXPECT_TRUE(found && found->port == 9002);
    send(b, quit{});
  });
}

TEST_F(EpmdTest, TwoSurvivorsRaceForThePortAndOneWins) {
  std::uint16_t port = free_port();
  run([&](process& self) -> task<void> {
    pid a = spawn_node(self.self(), "holder", 9001, keeper_options(port));
    (void)co_await self.receive<keeper_up>();
    pid b = spawn_node(self.self(), "b", 9002, keeper_options(port, self.self()));
    (void)co_await self.receive<keeper_up>();
    pid c = spawn_node(self.self(), "c", 9003, keeper_options(port, self.self()));
    (void)co_await self.receive<keeper_up>();
    exit(a, atoms::kill);
    int serving = 0;
    for (int i = 0; i < 2; ++i) {
      epmd_reregistered r = co_await self.receive<epmd_reregistered>();
      serving += r.serving ? 1 : 0;
    }
    EXPECT_EQ(serving, 1);  // exactly one became the server; the other registered with it
    names_response names = co_await epmd_names({.port = port});
    EXPECT_TRUE(has_name(names, "b"));
    EXPECT_TRUE(has_name(names, "c"));
    EXPECT_FALSE(has_name(names, "holder"));
    send(b, quit{});
    send(c, quit{});
  });
}

}  // namespace
}  // namespace athanor::dist
