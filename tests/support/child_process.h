// A child process for tests that drive a real program (an Erlang node, athanor-hello, ...): its
// own environment on top of this process's, its standard output and error merged and read line by
// line, killed at the end of the scope. Used by the tests of several parts.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace athanor::testing_support {

// A child process running `argv` with `env` added to this process's environment; stdout (and
// stderr, merged) readable line by line. Killed (SIGKILL) at the end of the scope.
class child {
 public:
  child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    std::vector<std::string> all_env = env;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      bool overridden = false;
      for (const auto& mine : env) overridden |= kv.substr(0, kv.find('=') + 1) == mine.substr(0, mine.find('=') + 1);
      if (!overridden) all_env.push_back(kv);
    }
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : all_env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    out_ = out[0];
  }
  ~child() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    if (out_ >= 0) ::close(out_);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  bool started() const { return pid_ > 0; }
  // Sends the child a signal (SIGKILL, SIGSTOP, SIGCONT, ...).
  void signal(int sig) const {
    if (pid_ > 0 && !exited_) ::kill(pid_, sig);
  }
  // The next line of output (without its newline), or nullopt at end of output or timeout.
  std::optional<std::string> line(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        all_ += l + "\n";
        return l;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, int(left.count())) <= 0) return std::nullopt;
      char b[4096];
      ssize_t n = ::read(out_, b, sizeof b);
      if (n <= 0) return std::nullopt;
      buf_.append(b, std::size_t(n));
    }
  }
  // Reads the rest of the output and waits for the exit. Returns the exit status (-1: signal or
  // timeout).
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    while (line(timeout)) {
    }
    int st = 0;
    if (::waitpid(pid_, &st, 0) != pid_) return -1;
    exited_ = true;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  // Everything read so far.
  const std::string& output() const { return all_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string buf_, all_;
};

}  // namespace athanor::testing_support
