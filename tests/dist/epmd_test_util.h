// Helpers for the EPMD tests: free ports, blocking sockets for the test thread, and child
// processes (a real `epmd`, real `erl` nodes) that are killed and reaped when the test ends.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../support/free_port.h"

extern char** environ;

namespace athanor::dist::testing {

using namespace std::chrono_literals;

using ::athanor::testing_support::free_port;

// A blocking connection for the test thread. Every read gives up after 20 s (a failing test
// reports instead of hanging).
class raw_conn {
 public:
  explicit raw_conn(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    timeval tv{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  raw_conn(const raw_conn&) = delete;
  raw_conn& operator=(const raw_conn&) = delete;
  ~raw_conn() { close(); }

  bool connected() const { return fd_ >= 0; }
  void send(std::string_view bytes) {
    std::size_t done = 0;
    while (fd_ >= 0 && done < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += std::size_t(n);
    }
  }
  // Up to n bytes: fewer only at end of stream (or after the 20 s guard).
  std::string read(std::size_t n) {
    std::string out;
    while (fd_ >= 0 && out.size() < n) {
      char buf[4096];
      ssize_t got = ::recv(fd_, buf, std::min(sizeof buf, n - out.size()), 0);
      if (got <= 0) break;
      out.append(buf, std::size_t(got));
    }
    return out;
  }
  std::string read_to_end() {
    std::string out;
    while (fd_ >= 0) {
      char buf[4096];
      ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
      if (got <= 0) break;
      out.append(buf, std::size_t(got));
    }
    return out;
  }
  // True when the peer has closed (or reset) the connection; false if a byte arrived or the
  // 20 s guard passed.
  bool closed_by_peer() {
    char c;
    ssize_t got = ::recv(fd_, &c, 1, 0);
    return got == 0 || (got < 0 && errno == ECONNRESET);
  }
  // Ends what we send (the peer reads end of stream); we can still read.
  void shutdown_write() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Sends one request on a fresh connection and returns everything the server sent until it closed.
inline std::string raw_exchange(std::uint16_t port, std::string_view request) {
  raw_conn c(port);
  c.send(request);
  return c.read_to_end();
}

// Polls `condition` every 5 ms until it holds (true) or `limit` passes (false). For states that
// change on another side with no event the test thread can wait on (a server noticing a closed
// connection); the limit only bounds a failing test.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 20s) {
  auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(5ms);
  }
}

inline bool can_connect(std::uint16_t port) {
  raw_conn c(port);
  return c.connected();
}

// The full path of `program` on PATH, or "".
inline std::string find_program(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string_view p = path ? path : "/usr/bin:/bin";
  while (!p.empty()) {
    std::size_t colon = p.find(':');
    std::string dir(p.substr(0, colon));
    p = colon == std::string_view::npos ? std::string_view() : p.substr(colon + 1);
    std::string full = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(full.c_str(), X_OK) == 0) return full;
  }
  return "";
}

// A temporary directory, removed with everything in it when this goes.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "athanor-epmd-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process in its own process group, its stdout and stderr in one pipe. Destroying it
// kills the group (SIGKILL) and reaps the child.
class child_process {
 public:
  child_process(std::vector<std::string> argv, const std::map<std::string, std::string>& env_overrides) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);

    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      std::string_view kv(*e);
      std::string key(kv.substr(0, kv.find('=')));
      if (!env_overrides.count(key)) env.emplace_back(kv);
    }
    for (const auto& [k, v] : env_overrides)
      if (!v.empty()) env.push_back(k + "=" + v);  // an empty value removes the variable
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    int rc = ::posix_spawnp(&pid_, cargv[0], &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(fds[1]);
    out_fd_ = fds[0];
    if (rc != 0) pid_ = -1;
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    kill(SIGKILL);
    wait(30s);
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  bool started() const { return pid_ > 0; }

  // Reads output until it contains `needle` (true) or the stream ends or `limit` passes (false).
  bool wait_for_output(std::string_view needle, std::chrono::milliseconds limit = 60s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (output_.find(needle) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !read_some(int(left.count()))) return false;
    }
    return true;
  }
  // Waits for the child to exit (reading its output meanwhile); its exit code, or -1 if it did
  // not exit within `limit` or was killed by a signal.
  int wait(std::chrono::milliseconds limit = 60s) {
    if (pid_ <= 0) return exit_code_;
    auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        while (read_some(0)) {
        }
        return exit_code_;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return -1;
      if (!read_some(int(std::min<long>(left.count(), 20)))) std::this_thread::sleep_for(5ms);
    }
  }
  void kill(int sig) {
    if (pid_ > 0) ::kill(-pid_, sig);
  }
  const std::string& output() const { return output_; }

 private:
  // Reads what is there within timeout_ms; false at end of stream or timeout.
  bool read_some(int timeout_ms) {
    if (out_fd_ < 0) return false;
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[4096];
    ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0) return false;
    output_.append(buf, std::size_t(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int exit_code_ = -1;
  std::string output_;
};

// A real `epmd -port P` bound to loopback, stopped when this goes. available() is false when
// epmd is not installed or did not start.
class real_epmd {
 public:
  explicit real_epmd(std::uint16_t port) : port_(port) {
    if (find_program("epmd").empty()) return;
    child_.emplace(std::vector<std::string>{"epmd", "-port", std::to_string(port), "-address", "127.0.0.1"},
                   std::map<std::string, std::string>{{"ERL_EPMD_PORT", ""}, {"ERL_EPMD_ADDRESS", ""}});
    if (!child_->started()) return;
    up_ = eventually([&] { return can_connect(port_); }, 20s);
  }
  bool available() const { return up_; }
  std::uint16_t port() const { return port_; }
  // Kills the daemon (SIGKILL) and reaps it: its port is free and its connections closed.
  void kill() {
    if (child_) {
      child_->kill(SIGKILL);
      child_->wait(30s);
    }
    up_ = false;
  }

 private:
  std::uint16_t port_;
  std::optional<child_process> child_;
  bool up_ = false;
};

inline bool erl_installed() { return !find_program("erl").empty(); }

// A name no other test (or test run) uses at the same time.
inline std::string unique_name(std::string_view prefix) {
  static std::atomic<int> counter{0};
  return std::string(prefix) + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1));
}

// A real Erlang node: `erl -sname <name>@localhost -setcookie <cookie> -noshell -eval <code>`,
// with ERL_EPMD_PORT set, its own temporary HOME (no ~/.erlang.cookie is read or written) and no
// epmd of its own (-start_epmd false).
class erl_node {
 public:
  erl_node(const std::string& name, std::uint16_t epmd_port, const std::string& eval, const std::string& home,
           const std::string& cookie = "athanor_epmd_test")
      : child_({"erl", "-sname", name + "@localhost", "-setcookie", cookie, "-start_epmd", "false", "-noshell",
                "-eval", eval},
               {{"ERL_EPMD_PORT", std::to_string(epmd_port)},
                {"HOME", home},
                {"ERL_CRASH_DUMP_SECONDS", "0"},
                {"ERL_EPMD_ADDRESS", ""},
                {"ERL_AFLAGS", ""},
                {"ERL_FLAGS", ""},
                {"ERL_ZFLAGS", ""}}) {}
  child_process& process() { return child_; }

 private:
  child_process child_;
};

}  // namespace athanor::dist::testing
