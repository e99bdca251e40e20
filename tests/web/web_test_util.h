// Shared helpers for the web tests: a runtime plus a server per test, external clients (curl,
// node + ws, wrk, openssl) run as child processes, and a blocking raw-socket client for the
// protocol edge cases no real client will produce.
#pragma once

#include "../support/npm_packages.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "../support/child_process.h"
#include "athanor/athanor.h"
#include "athanor/web/web.h"

namespace athanor::web::testing {

using namespace std::chrono_literals;

// True if `tool` is on PATH.
inline bool have_tool(const std::string& tool) {
  std::string cmd = "command -v " + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Runs a shell command; returns its exit status and stdout.
struct command_result {
  int status = -1;
  std::string out;
};
inline command_result sh(const std::string& cmd) {
  command_result r;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) r.out.append(buf.data(), n);
  int st = ::pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

#define ATHANOR_REQUIRE_TOOL(tool)                                                         \
  do {                                                                                      \
    if (!::athanor::web::testing::have_tool(tool))                                          \
      GTEST_SKIP() << tool " is not installed (scripts/install-deps.sh --test installs it)"; \
  } while (0)

// A blocking TCP client for raw protocol tests (from the test thread, not a process).
class raw_client {
 public:
  explicit raw_client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    int one = 1;
    if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~raw_client() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool send(std::string_view s) {
    std::size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::send(fd_, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += std::size_t(n);
    }
    return true;
  }
  // Reads until the peer closes or `timeout` passes; returns what arrived.
  std::string read_all(std::chrono::milliseconds timeout = 5000ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (read_some(out, deadline)) {
    }
    return out;
  }
  // Reads until `out` contains `marker` (or close / timeout). Returns true if found.
  bool read_until(std::string& out, std::string_view marker, std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.find(marker) == std::string::npos) {
      if (!read_some(out, deadline)) return out.find(marker) != std::string::npos;
    }
    return true;
  }
  // Reads exactly n more bytes (or fewer on close / timeout).
  std::string read_n(std::size_t n, std::chrono::milliseconds timeout = 5000ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < n) {
      if (!read_some(out, deadline, n - out.size())) break;
    }
    return out;
  }
  // True if the peer has closed (EOF or reset) within timeout.
  bool closed_within(std::chrono::milliseconds timeout) {
    std::string sink;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, int(left.count())) <= 0) return false;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
  }

 private:
  bool read_some(std::string& out, std::chrono::steady_clock::time_point deadline, std::size_t max = 65536) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, max), 0);
    if (n <= 0) return false;
    out.append(buf, std::size_t(n));
    return true;
  }
  int fd_ = -1;
};

#ifdef ATHANOR_HELLO_BIN
// athanor-hello as a separate OS process (for limits of its own, or to test the demo itself):
// started with `args`, through `sh -c` with `shell_prefix` first when given (e.g. "ulimit -n 64
// &&"); port() is 0 if it did not start.
class hello_process {
 public:
  explicit hello_process(const std::string& args, const std::string& shell_prefix = "")
      : child_({"/bin/sh", "-c", shell_prefix + " exec '" ATHANOR_HELLO_BIN "' --port 0 " + args}, {}) {
    // "athanor-hello: listening on HOST:PORT (...)"
    while (std::optional<std::string> line = child_.line()) {
      std::size_t at = line->find("listening on ");
      if (at == std::string::npos) continue;
      port_ = std::uint16_t(std::stoul(line->substr(line->find(':', at + 13) + 1)));
      break;
    }
  }
  std::uint16_t port() const { return port_; }

 private:
  ::athanor::testing_support::child child_;
  std::uint16_t port_ = 0;
};
#endif

// A runtime and a server on 127.0.0.1:<free port> per test. Tests add routes in make_router()
// or by overriding configure().
class WebTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_ = std::make_unique<runtime>(runtime_config{.schedulers = 2});
  }
  void TearDown() override {
    srv_.stop(1000ms);
    srv_ = server();
    rt_.reset();
  }
  void start(router r, server_config cfg = {}) {
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.acceptors = cfg.acceptors ? cfg.acceptors : 2;
    srv_ = listen(std::move(cfg), std::move(r));
  }
  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(srv_.port()) + std::string(path);
  }
  std::uint16_t port() const { return srv_.port(); }

  std::unique_ptr<runtime> rt_;
  server srv_;
};

// The directory of the node test client (tests/web/js), and `npm ci` run there once per test
// binary if a package of package.json is missing (tests/support/npm_packages.h).
inline std::string js_dir() { return (std::filesystem::path(__FILE__).parent_path() / "js").string(); }
inline bool ensure_node_modules() {
  return ::athanor::testing_support::ensure_npm_packages(js_dir(), {"ws", "phoenix", "playwright-core"});
}

}  // namespace athanor::web::testing
