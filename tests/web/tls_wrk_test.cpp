// HTTPS and WSS with a self-signed certificate made at test time (openssl CLI), and a short wrk run.
#include <csignal>
#include <fstream>
#include <unistd.h>

#include "web_test_util.h"

namespace athanor::web::testing {
namespace {

router tls_router() {
  router r;
  r.get("/hello/:name", [](conn& c) { return c.text(200, "Hello, " + c.param("name")); });
  r.post("/echo", [](conn& c) { return c.text(200, c.body()); });
  r.websocket("/echo", [](ws& w) -> proc {
    for (;;) {
      std::optional<ws_message> m = co_await w.receive();
      if (!m) break;
      co_await w.send(std::move(*m));
    }
  });
  return r;
}

// Makes a self-signed certificate for 127.0.0.1 in a temp directory; returns {cert, key} or {} on failure.
std::pair<std::string, std::string> self_signed() {
  // One directory per test process: ctest runs the TLS tests in parallel, each with its own key.
  std::string dir = ::testing::TempDir() + "/athanor_tls_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  auto r = sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
              key + " -out " + cert + " 2>&1");
  if (r.status != 0) return {};
  return {cert, key};
}

TEST_F(WebTest, HttpsWithCurl) {
  ATHANOR_REQUIRE_TOOL("openssl");
  ATHANOR_REQUIRE_TOOL("curl");
  auto [cert, key] = self_signed();
  ASSERT_FALSE(cert.empty());
  server_config cfg;
  cfg.tls = tls_config{cert, key};
  start(tls_router(), cfg);
  std::string base = "https://127.0.0.1:" + std::to_string(port());
  // Verified against the generated certificate (not -k): the handshake and the chain are real.
  auto r = sh("curl -sv --cacert " + cert + " " + base + "/hello/tls " + base + "/hello/again 2>&1");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Hello, tls"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Hello, again"), std::string::npos);
  EXPECT_NE(r.out.find("Re-using existing connection"), std::string::npos);
  std::string body(300000, 'q');
  std::string file = ::testing::TempDir() + "/tls_body.txt";
  std::ofstream(file) << body;
  auto post = sh("curl -s --cacert " + cert + " --data-binary @" + file + " " + base + "/echo");
  EXPECT_EQ(post.out.size(), body.size());
  // Plain HTTP to the TLS port fails the handshake and only that connection.
  auto plain = sh("curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:" + std::to_string(port()) + "/hello/x");
  EXPECT_NE(plain.out, "200");
  EXPECT_NE(sh("curl -s --cacert " + cert + " " + base + "/hello/still").out.find("Hello, still"), std::string::npos);
}

TEST_F(WebTest, WssWithNodeWsClient) {
  ATHANOR_REQUIRE_TOOL("openssl");
  if (!have_tool("node") || !ensure_node_modules()) GTEST_SKIP() << "node and tests/web/js/node_modules needed";
  auto [cert, key] = self_signed();
  ASSERT_FALSE(cert.empty());
  server_config cfg;
  cfg.tls = tls_config{cert, key};
  start(tls_router(), cfg);
  auto r = sh("node '" + js_dir() + "/ws_client.js' echo wss://127.0.0.1:" + std::to_string(port()) + "/echo 2>&1");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("OK echo", 0), 0u) << r.out;
}

TEST_F(WebTest, TlsServerIgnoresSigpipeSoAVanishedClientEndsOnlyItsConnection) {
  ATHANOR_REQUIRE_TOOL("openssl");
  struct sigaction saved {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &saved), 0);
  ::signal(SIGPIPE, SIG_DFL);
  auto [cert, key] = self_signed();
  ASSERT_FALSE(cert.empty());
  server_config cfg;
  cfg.tls = tls_config{cert, key};
  start(tls_router(), cfg);
  struct sigaction now {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_IGN);
  ::sigaction(SIGPIPE, &saved, nullptr);
}

TEST_F(WebTest, MissingCertificateFilesThrow) {
  server_config cfg;
  cfg.tls = tls_config{"/nonexistent/cert.pem", "/nonexistent/key.pem"};
  EXPECT_THROW(start(tls_router(), cfg), std::runtime_error);
}

TEST_F(WebTest, WrkShortRunHasNoErrors) {
  ATHANOR_REQUIRE_TOOL("wrk");
  start(tls_router());
  auto r = sh("wrk -t2 -c32 -d1s " + url("/hello/wrk") + " 2>&1");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Requests/sec"), std::string::npos) << r.out;
  // wrk reports socket errors and non-2xx/3xx responses only when there are some.
  EXPECT_EQ(r.out.find("Non-2xx"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Socket errors"), std::string::npos) << r.out;
  std::size_t at = r.out.find(" requests in ");
  ASSERT_NE(at, std::string::npos);
  std::size_t start_num = r.out.rfind(' ', at - 1);
  EXPECT_GT(std::stol(r.out.substr(start_num + 1, at - start_num - 1)), 100);
}

}  // namespace
}  // namespace athanor::web::testing
