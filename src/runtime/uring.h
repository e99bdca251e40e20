// Socket I/O on io_uring for attached sockets: one completion ring per scheduler worker. Internal.
// The design essay is at the top of uring.cpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <vector>

#include "athanor/term/pid.h"

struct io_uring_sqe;  // liburing's

namespace athanor::detail {

// A growable byte buffer of 16 bytes (std::string is 32, and an attached socket holds three).
// Not thread-safe.
class byte_buffer {
 public:
  byte_buffer() = default;
  byte_buffer(const byte_buffer&) = delete;
  byte_buffer& operator=(const byte_buffer&) = delete;
  ~byte_buffer() { std::free(data_); }
  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  // Returns false (and changes nothing) when memory runs out: callers hold a spin lock.
  [[nodiscard]] bool append(const char* p, std::size_t n) noexcept;
  // Drops the first n bytes.
  void consume(std::size_t n) noexcept;
  // Empties the buffer; gives its memory back when it is larger than keep_bytes.
  void clear(std::size_t keep_bytes = 0) noexcept;
  void swap(byte_buffer& o) noexcept;

 private:
  char* data_ = nullptr;
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = 0;
};

class io_ring;
bool orphans_waiting() noexcept;  // (see ring_orphan)

// The shared state of a socket whose reads and writes go through the rings (tcp_socket::attach).
// Thread-safe: the owner process and the ring threads that complete its operations take `lock`.
// It lives until the socket is closed and no operation on it is in flight (`refs`); the fd is
// closed with it, so the kernel never sees a reused descriptor number.
struct ring_stream {
  int fd;
  pid owner;
  std::atomic<std::uint32_t> refs{1};  // the socket's, plus one per operation in flight or queued
  std::atomic_flag lock_flag = ATOMIC_FLAG_INIT;
  // Under the lock:
  bool recv_armed = false;      // a recv is in flight (or queued to be)
  bool send_in_flight = false;  // a send of `sending` is in flight (or queued to be)
  bool eof = false;             // the peer ended the stream (or reset it)
  bool broken = false;          // a send failed: the peer is gone
  bool closed = false;          // the owner closed the socket
  bool want_writable = false;   // the owner was told "would block" and waits for room
  bool shut_write = false;      // the owner shut its sending side: do it once `sending` is out
  std::uint32_t sent = 0;       // bytes of `sending` already sent
  byte_buffer input;            // received, not yet read by the owner
  byte_buffer sending;          // the bytes of the send in flight (stable until it completes)
  byte_buffer queued;           // written by the owner while a send was in flight

  void lock() noexcept;
  void unlock() noexcept { lock_flag.clear(std::memory_order_release); }
};

// What the owner's operations on a ring_stream return (tcp_socket's try_read / try_write).
struct ring_io_result {
  std::size_t n = 0;
  bool eof = false;          // read: end of stream; write: the peer is gone
  bool would_block = false;
};

// Reads up to `cap` bytes of what the socket has received. Owner only.
ring_io_result ring_read(ring_stream* s, char* out, std::size_t cap);
// Takes as much of `data` as the output limit allows, to be sent in order. Owner only.
ring_io_result ring_write(ring_stream* s, std::string_view data);
// The owner is done: pending output is still sent, then the socket is shut down and closed.
void ring_close(ring_stream* s) noexcept;
// Shuts down the sending side once pending output is out.
void ring_shutdown_write(ring_stream* s) noexcept;
// Starts a ring_stream for fd on the calling worker's ring, owned by `owner`; nullptr when this
// thread has no ring (and the caller uses the epoll path).
ring_stream* ring_attach(int fd, pid owner);

// One io_uring instance, owned by one scheduler worker (IORING_SETUP_SINGLE_ISSUER and
// DEFER_TASKRUN: only that thread submits and reaps). Not thread-safe except wake().
class io_ring {
 public:
  // A ring for the calling thread, or nullptr if the kernel (or liburing's absence) says no.
  static io_ring* create() noexcept;
  ~io_ring();  // cancels what is in flight and waits for it (bounded), then closes the ring

  // Submits what is queued and handles every completion that is ready: one system call.
  void poll();
  // Submits, then sleeps until a completion, a wake() or timeout_ms (-1: none); handles completions.
  void wait(int timeout_ms);
  // Ends a wait() from any thread (an eventfd write).
  void wake() noexcept;
  // Asks for one completion when the epoll fd becomes readable (once until it comes):
  // epoll_ready() then says so, once.
  void watch_epoll(int epfd);
  bool take_epoll_ready() noexcept {
    bool r = epoll_ready_;
    epoll_ready_ = false;
    return r;
  }
  // Operations queued but not yet submitted, and in flight.
  unsigned queued() const noexcept { return queued_; }
  bool busy() const noexcept { return queued_ != 0 || in_flight_ != 0 || orphans_waiting(); }

  // For ring_stream: queue a recv / a send of s->sending (the caller holds a reference for it).
  void queue_recv(ring_stream* s);
  void queue_send(ring_stream* s);

 private:
  io_ring() = default;
  struct state;
  state* st_ = nullptr;
  unsigned queued_ = 0;
  std::uint64_t in_flight_ = 0;  // stream operations (not the wake read nor the epoll watch)
  bool epoll_watched_ = false;
  bool epoll_ready_ = false;
  bool stopping_ = false;
  void handle_batch();
  void complete(std::uint64_t user_data, int res, std::uint32_t flags);
  void arm_wake();
  void adopt_orphans();
  ::io_uring_sqe* sqe();
};

// Operations that a thread without a ring (a relief worker) asked for: the next ring to poll or
// wait queues them (every ring counts as busy while any wait). Thread-safe.
void ring_orphan(ring_stream* s, bool recv);
bool orphans_waiting() noexcept;

}  // namespace athanor::detail
