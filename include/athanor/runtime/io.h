// TCP sockets for processes: accept, connect, read and write suspend the calling process (not its
// thread) until the socket is ready. A socket object belongs to one process: not thread-safe.
//
//   auto listener = athanor::tcp_listener::listen("127.0.0.1", 0);
//   athanor::tcp_socket conn = co_await listener.accept();
//   std::size_t n = co_await conn.read(buffer);          // 0 at end of stream
//   co_await conn.write_all(reply);
//
// Readiness comes from the runtime's epoll instance, which is also where idle schedulers wait,
// so a process waiting on a socket costs no thread. Errors throw std::system_error (let it
// crash: the process ends with the error's message as its reason), except end-of-stream,
// which read() reports as 0.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "athanor/runtime/proc.h"

namespace athanor {

namespace detail {
// Suspends the current process until fd is ready for `events` (EPOLLIN/EPOLLOUT).
struct fd_wait {
  int fd;
  std::uint32_t events;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() const noexcept {}
};
}  // namespace detail

class tcp_socket {
 public:
  tcp_socket() = default;
  // Takes ownership of a connected socket descriptor and makes it non-blocking.
  explicit tcp_socket(int fd);
  tcp_socket(tcp_socket&& o) noexcept;
  tcp_socket& operator=(tcp_socket&& o) noexcept;
  ~tcp_socket();

  // Connects to host:port (a numeric IPv4 address or "localhost"). Throws std::system_error.
  static task<tcp_socket> connect(std::string host, std::uint16_t port);

  // Reads at least one byte into buf; returns the count, or 0 at end of stream. Throws std::system_error.
  task<std::size_t> read(std::span<std::byte> buf);
  // Reads exactly buf.size() bytes; returns false if the stream ended first. Throws std::system_error.
  task<bool> read_exactly(std::span<std::byte> buf);
  // Writes all of buf. Throws std::system_error (EPIPE if the peer closed).
  task<void> write_all(std::span<const std::byte> buf);
  task<void> write_all(std::string_view text) { return write_all(std::as_bytes(std::span(text.data(), text.size()))); }

  // Closes the socket now (the destructor also does).
  void close() noexcept;
  // Shuts down the sending side (the peer reads end of stream).
  void shutdown_write() noexcept;
  bool is_open() const noexcept { return fd_ >= 0; }
  int native_handle() const noexcept { return fd_; }
  std::uint16_t local_port() const;

 private:
  int fd_ = -1;
};

class tcp_listener {
 public:
  tcp_listener() = default;
  tcp_listener(tcp_listener&& o) noexcept;
  tcp_listener& operator=(tcp_listener&& o) noexcept;
  ~tcp_listener();

  // Listens on host:port (port 0: any free port). Throws std::system_error. With reuse_port,
  // several listeners may share the port (SO_REUSEPORT) and the kernel spreads connections.
  static tcp_listener listen(const std::string& host, std::uint16_t port, int backlog = 1024, bool reuse_port = false);

  // Waits for and returns the next connection. Throws std::system_error; when the process is out
  // of file descriptors (EMFILE/ENFILE), throws with that error rather than spinning.
  task<tcp_socket> accept();

  std::uint16_t port() const noexcept { return port_; }
  void close() noexcept;
  int native_handle() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace athanor
