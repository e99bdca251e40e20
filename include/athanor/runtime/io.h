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

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "athanor/runtime/proc.h"
#include "athanor/runtime/process.h"

namespace athanor {

// What a readiness wait (io_wait) ended with.
enum class io_wait_result { ready, timeout, message };

// Readiness events for io_wait (the epoll bits).
inline constexpr std::uint32_t io_readable = 0x001;  // EPOLLIN
inline constexpr std::uint32_t io_writable = 0x004;  // EPOLLOUT

namespace detail {
// Suspends the current process until fd is ready for `events` (EPOLLIN/EPOLLOUT).
struct [[nodiscard]] fd_wait {
  int fd;
  std::uint32_t events;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() const noexcept {}
};

// A timer kept across attached waits (fd_wait_for's `lazy`), for a deadline that moves with every
// message (an idle timeout): instead of a timer started and cancelled per wait, one stays armed
// while it fires no later than the wait's deadline; when it fires early the wait ends as "ready"
// and the caller, which loops on spare wake-ups anyway, waits again. One owner process; cancels
// itself when destroyed.
struct lazy_deadline {
  std::uint64_t handle = 0;
  std::uint64_t at_ms = 0;
  lazy_deadline() = default;
  lazy_deadline(const lazy_deadline&) = delete;
  lazy_deadline& operator=(const lazy_deadline&) = delete;
  ~lazy_deadline();
};

// Suspends the current process until fd is ready, a timeout passes, or (optionally) a message is
// queued in its mailbox. The mailbox case leaves the message in place. Lives in the awaiting frame.
struct [[nodiscard]] fd_wait_for : receive_state {
  int fd;
  std::uint32_t events;
  std::int64_t wait_ms;      // -1: no timeout
  bool wake_on_message;
  type_id wake_type;         // with wake_on_message: only a message of this type wakes (nullptr: any)
  bool got_message = false;
  std::uint64_t deadline_ms = ~std::uint64_t(0);  // set with the timer; a wait that never started has none
  std::uint64_t timer_handle = 0;
  bool attached = false;     // fd is attached (netpoll::attach) to this process: no arming
  lazy_deadline* lazy = nullptr;  // with attached and a timeout: the timer to use (see lazy_deadline)
  fd_wait_for(int f, std::uint32_t ev, std::int64_t t, bool m, type_id only, bool is_attached = false,
              lazy_deadline* lazy_timer = nullptr)
      : fd(f), events(ev), wait_ms(t), wake_on_message(m), wake_type(only), attached(is_attached),
        lazy(is_attached ? lazy_timer : nullptr) {}
  fd_wait_for(const fd_wait_for&) = delete;
  fd_wait_for& operator=(const fd_wait_for&) = delete;
  ~fd_wait_for();
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  io_wait_result await_resume() noexcept;
};

// Registers fd with the poller once, edge-triggered, for process `owner`: afterwards every wait
// on fd must be owner's, in an fd_wait_for with is_attached = true, which then costs no system
// call to arm. One attached fd per process; it stays attached until closed. Returns 0, or an
// errno value (ENXIO without a running runtime) and the fd is then used as before, armed per wait.
int attach_fd(int fd, pid owner) noexcept;
struct ring_stream;
}  // namespace detail

// co_await io_wait(fd, io_readable, 5000ms, true): suspends the calling process (not its thread)
// until fd is ready for `events` (io_readable / io_writable), `timeout` passes (negative: never) or,
// with wake_on_message, any message is waiting in the mailbox (it stays there). Returns which of
// the three happened (ready also when the fd is in error or hung up: the next read/write reports it).
// Throws std::logic_error outside a process.
inline detail::fd_wait_for io_wait(int fd, std::uint32_t events, std::chrono::milliseconds timeout,
                                   bool wake_on_message = false) {
  return detail::fd_wait_for(fd, events, timeout.count() < 0 ? -1 : std::int64_t(timeout.count()), wake_on_message, nullptr);
}
// Same, but only a queued message of type T ends the wait (others stay queued and do not wake it).
template <class T>
detail::fd_wait_for io_wait_or_message(int fd, std::uint32_t events, std::chrono::milliseconds timeout) {
  return detail::fd_wait_for(fd, events, timeout.count() < 0 ? -1 : std::int64_t(timeout.count()), true,
                             detail::type_of<T>());
}

// The result of a non-blocking read or write: a byte count, end of stream (reads), or "would block".
struct io_result {
  std::size_t n = 0;
  bool eof = false;          // reads only: the peer closed its side (or reset the connection)
  bool would_block = false;  // nothing transferred; wait with io_wait and try again
};

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

  // Reads what is available without suspending. Returns the count, eof, or would_block.
  // Throws std::system_error on errors other than a reset (which reads as eof).
  io_result try_read(std::span<std::byte> buf);
  // Writes what fits without suspending. Returns the count or would_block. Throws
  // std::system_error (EPIPE, ECONNRESET) when the peer is gone.
  io_result try_write(std::span<const std::byte> buf);

  // Hands the socket to process `owner` (the caller, usually) for the rest of its life, for the
  // cheapest reads and writes the runtime has. With io_uring (runtime_config::io_uring, and a
  // kernel that allows it) received bytes are queued for the owner as they arrive and writes are
  // queued and sent in order, with no system call of their own: try_write then takes what fits
  // under a 256 KiB limit and reports would_block beyond it. Otherwise (completion = false, TLS,
  // or no ring) the socket is registered once with epoll, edge-triggered. Afterwards only `owner`
  // may use the socket, and it waits through read(), write_all() or an attached wait
  // (detail::fd_wait_for with is_attached = true). Returns 0, or an errno value (and the socket
  // is used as before).
  int attach(pid owner, bool completion = true) noexcept;
  // True after a successful attach().
  bool is_attached() const noexcept { return attached_; }

  // Closes the socket now (the destructor also does). On an attached socket, bytes accepted by
  // try_write that are still queued are sent first (for at most 30 s if the peer stops reading).
  void close() noexcept;
  // Shuts down the sending side (the peer reads end of stream) once queued bytes are out.
  void shutdown_write() noexcept;
  bool is_open() const noexcept { return fd_ >= 0; }
  int native_handle() const noexcept { return fd_; }
  std::uint16_t local_port() const;
  // The peer's address as "a.b.c.d:port", or "" if unknown.
  std::string peer_name() const;
  // Sets SO_SNDBUF / SO_RCVBUF (bytes; the kernel doubles them). Returns false if refused.
  bool set_buffer_sizes(int send_bytes, int receive_bytes) noexcept;

 private:
  int fd_ = -1;
  bool attached_ = false;
  detail::ring_stream* ring_ = nullptr;  // attached through io_uring
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
  // Accepts a pending connection without suspending: an open socket, or a closed one when none is
  // pending. Throws std::system_error on errors, including EMFILE/ENFILE (out of descriptors).
  tcp_socket try_accept();
  // The same, but an error is returned in `error` (its errno; 0 when there was none, also when
  // nothing was pending) instead of thrown: for the out-of-descriptors path, where building an
  // exception's message costs memory and, under sanitizers, descriptors of their own.
  tcp_socket try_accept(int& error) noexcept;

  // Another descriptor for the same listening socket (dup), so that several processes can each wait
  // on it (readiness is registered per descriptor). Throws std::system_error.
  tcp_listener duplicate() const;

  std::uint16_t port() const noexcept { return port_; }
  void close() noexcept;
  int native_handle() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace athanor
