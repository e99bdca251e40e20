// Socket I/O on io_uring.
//
// Design
// ======
// Why. On this class of machine a system call costs about a microsecond of entry and exit alone,
// and an echo over epoll needs three per message (epoll_wait amortised, read, send). A ring turns
// them into queue entries: every send and receive that a scheduling round produces goes to the
// kernel in one io_uring_enter, which also collects what completed since the last one.
//
// Concepts:
//   * one io_ring per scheduler worker, created by that worker (SINGLE_ISSUER, DEFER_TASKRUN: the
//     kernel finishes our operations only when the owning thread enters the ring, so completions
//     never interrupt a thread that is running processes).
//   * a ring_stream per attached socket (tcp_socket::attach): the bytes received and not yet read,
//     the send in flight, the bytes queued behind it, and flags, under a spin lock, since the
//     owner process may run on one worker while its operations complete on another's ring.
//   * receives use buffer selection from a ring of provided buffers (one per io_ring): a socket
//     waiting for data holds no buffer of its own, which is what lets a node hold its connections
//     in ~2 KB each. A completion copies the bytes into the stream's `input`, gives the buffer back
//     at once, re-arms the receive (unless `input` is over its limit: then TCP's own window pushes
//     back on the peer until the owner reads) and wakes the owner with the same edge signal an
//     epoll edge sends (io.cpp), so processes wait on attached sockets the same way on both paths.
//   * sends: the owner's write copies bytes into the stream and, if no send is in flight, queues
//     one on the ring of the thread it runs on; the completion sends the rest or what was queued
//     meanwhile. One send in flight per socket keeps the byte order; a limit on the bytes held
//     makes a write "would block", and the completion that drains them wakes the writer.
//
// Where rings are entered (scheduler.cpp): every 16 dispatches while the ring has work, when a
// scheduling round queued many operations, before a worker spins or sleeps, and idle workers
// sleep in io_uring_enter instead of on a futex (a waker writes the worker's eventfd, whose read
// is always armed on its ring). The poller keeps the epoll instance for sockets that are not
// attached: its ring watches the epoll fd and it calls epoll_wait(0) when that fires.
//
// Approaches rejected:
//   * Multishot receive: it cannot be paused, so a process that does not read would have its bytes
//     copied into memory without bound; a one-shot receive re-armed per completion costs a queue
//     entry, not a system call, and leaves back-pressure to TCP.
//   * A buffer per socket handed to the kernel: memory per idle connection = the buffer.
//   * One ring shared by all workers (a lock per submission), or a dedicated I/O thread (a
//     cross-thread wake per message, ~25 us here).
//   * Cancelling a socket's operations at close: a cancel must be issued on the ring that holds the
//     operation, which may belong to another thread. shutdown(2) ends them wherever they are.
//
// Invariants:
//   1. Only the thread that owns a ring submits to it or reaps it.
//   2. A ring_stream and its fd live while any operation on them is in flight (refs); the fd is
//      closed only by the last reference, so the kernel never sees a reused descriptor number.
//   3. At most one receive and one send are in flight per stream; `sending` is not touched while
//      its send is in flight (the kernel may still read it).
//   4. Every completion that changes what the owner can do (bytes, end of stream, room to write)
//      sends it an edge signal after releasing the stream's lock.
#include "runtime/uring.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include "runtime/internal.h"

#ifdef ATHANOR_HAVE_URING
#include <liburing.h>
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#include <sanitizer/tsan_interface.h>
#define ATHANOR_TSAN 1
#endif
#endif

namespace athanor::detail {

namespace {
// liburing maps and unmaps a ring's queues with raw system calls, which ThreadSanitizer does not
// see: when a ring is freed and another thread's new ring is mapped at the same address, TSan
// still holds the old owner's writes there and reports the new owner's first writes as a race.
// The kernel orders the unmapping before the new mapping; these tell TSan so: a release before a
// ring's memory is unmapped, an acquire after a new ring's memory is mapped. (Not a release after
// the unmapping and an acquire before the mapping: another thread can map the freed address in
// between, and its acquire then misses the release. liburing's own code is not instrumented, so
// its writes inside io_uring_queue_init_params are invisible to TSan either way.)
[[maybe_unused]] char g_ring_memory_order;
inline void ring_memory_about_to_be_unmapped() noexcept {
#ifdef ATHANOR_TSAN
  __tsan_release(&g_ring_memory_order);
#endif
}
inline void ring_memory_just_mapped() noexcept {
#ifdef ATHANOR_TSAN
  __tsan_acquire(&g_ring_memory_order);
#endif
}
}  // namespace

// ---- byte_buffer -------------------------------------------------------------------------

bool byte_buffer::append(const char* p, std::size_t n) noexcept {
  if (n == 0) return true;
  if (size_ + n > cap_) {
    std::size_t want = std::max<std::size_t>({std::size_t(size_) + n, std::size_t(cap_) * 2, 256});
    char* d = static_cast<char*>(std::realloc(data_, want));
    if (!d) return false;
    data_ = d;
    cap_ = std::uint32_t(want);
  }
  std::memcpy(data_ + size_, p, n);
  size_ += std::uint32_t(n);
  return true;
}

void byte_buffer::consume(std::size_t n) noexcept {
  if (n >= size_) {
    size_ = 0;
    return;
  }
  std::memmove(data_, data_ + n, size_ - n);
  size_ -= std::uint32_t(n);
}

void byte_buffer::clear(std::size_t keep_bytes) noexcept {
  size_ = 0;
  if (cap_ > keep_bytes) {
    std::free(data_);
    data_ = nullptr;
    cap_ = 0;
  }
}

void byte_buffer::swap(byte_buffer& o) noexcept {
  std::swap(data_, o.data_);
  std::swap(size_, o.size_);
  std::swap(cap_, o.cap_);
}

// ---- ring_stream --------------------------------------------------------------------------

void ring_stream::lock() noexcept {
  while (lock_flag.test_and_set(std::memory_order_acquire)) {
    while (lock_flag.test(std::memory_order_relaxed)) __builtin_ia32_pause();
  }
}

namespace {
constexpr std::size_t kInputLimit = 64 * 1024;    // received bytes held for the owner before TCP pushes back
constexpr std::size_t kOutputLimit = 256 * 1024;  // bytes a socket holds for sending before writes would block
// An emptied buffer keeps no memory: an idle connection then holds none (malloc's per-thread
// cache makes the next message's allocation cheap).
constexpr std::size_t kKeepBytes = 0;

void drop_ref(ring_stream* s) noexcept {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    ::close(s->fd);
    delete s;
  }
}

void wake_owner(ring_stream* s) noexcept { deliver(s->owner, make_envelope<sig_wake>(true, 0u, true)); }

// Queues a receive (recv = true) or the send of s->sending on this thread's ring, or hands it to
// the next ring that polls. The caller holds the lock and has counted the reference.
void queue_op(ring_stream* s, bool recv) {
  if (io_ring* r = tls().ring) {
    if (recv) r->queue_recv(s);
    else r->queue_send(s);
  } else {
    ring_orphan(s, recv);
  }
}

std::mutex g_orphan_mu;
std::vector<std::pair<ring_stream*, bool>> g_orphans;
std::atomic<bool> g_orphans_waiting{false};
}  // namespace

bool orphans_waiting() noexcept { return g_orphans_waiting.load(std::memory_order_acquire); }

void ring_orphan(ring_stream* s, bool recv) {
  {
    std::lock_guard lock(g_orphan_mu);
    g_orphans.emplace_back(s, recv);
    g_orphans_waiting.store(true, std::memory_order_release);
  }
  if (g_rt) g_rt->wake_worker();
}

ring_io_result ring_read(ring_stream* s, char* out, std::size_t cap) {
  ring_io_result r;
  s->lock();
  if (!s->input.empty()) {
    r.n = std::min(cap, s->input.size());
    std::memcpy(out, s->input.data(), r.n);
    s->input.consume(r.n);
    if (s->input.empty()) s->input.clear(kKeepBytes);
  } else if (s->eof) {
    r.eof = true;
  } else {
    r.would_block = true;
  }
  // A receive paused at the input limit resumes once the owner has read below it.
  if (!s->recv_armed && !s->eof && !s->closed && s->input.size() < kInputLimit) {
    s->recv_armed = true;
    s->refs.fetch_add(1, std::memory_order_relaxed);
    queue_op(s, true);
  }
  s->unlock();
  return r;
}

ring_io_result ring_write(ring_stream* s, std::string_view data) {
  ring_io_result r;
  if (data.empty()) return r;
  s->lock();
  if (s->broken || s->closed || s->shut_write) {
    s->unlock();
    r.eof = true;
    return r;
  }
  std::size_t held = (s->sending.size() - s->sent) + s->queued.size();
  if (held >= kOutputLimit) {
    s->want_writable = true;
    s->unlock();
    r.would_block = true;
    return r;
  }
  r.n = std::min(data.size(), kOutputLimit - held);
  bool ok;
  if (!s->send_in_flight) {
    s->sent = 0;
    ok = s->sending.append(data.data(), r.n);
    if (ok) {
      s->send_in_flight = true;
      s->refs.fetch_add(1, std::memory_order_relaxed);
      queue_op(s, false);
    }
  } else {
    ok = s->queued.append(data.data(), r.n);
  }
  s->unlock();
  if (!ok) throw std::bad_alloc();  // (not under the lock)
  return r;
}

void ring_shutdown_write(ring_stream* s) noexcept {
  s->lock();
  s->shut_write = true;  // later writes fail at once, as after shutdown(2)
  if (!s->send_in_flight) ::shutdown(s->fd, SHUT_WR);
  s->unlock();
}

void ring_close(ring_stream* s) noexcept {
  s->lock();
  s->closed = true;
  s->input.clear();
  s->want_writable = false;
  if (s->send_in_flight) {
    // Let the output go, as close(2) does with a socket's buffer, but not forever: a peer that
    // stops reading gets TCP_USER_TIMEOUT, after which the send fails and the socket goes.
    int ms = 30'000;
    ::setsockopt(s->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    s->shut_write = true;
    ::shutdown(s->fd, SHUT_RD);  // ends a receive in flight
  } else {
    ::shutdown(s->fd, SHUT_RDWR);
  }
  s->unlock();
  drop_ref(s);
}

#ifdef ATHANOR_HAVE_URING

// ---- io_ring -------------------------------------------------------------------------------

namespace {
constexpr unsigned kEntries = 256;          // submission queue; completions get 16x
constexpr unsigned kBuffers = 512;          // provided receive buffers per ring (a power of two)
constexpr unsigned kBufferBytes = 4096;
constexpr std::uint64_t kWakeTag = 1;       // user_data of the eventfd read
constexpr std::uint64_t kEpollTag = 2;      // of the poll on the epoll fd
constexpr std::uint64_t kIgnoreTag = 3;     // of cancellations
constexpr std::uint64_t kSendBit = 1;       // stream pointer | 1: its send; | 0: its receive
}  // namespace

struct io_ring::state {
  io_uring ring{};
  io_uring_buf_ring* bufs = nullptr;
  std::size_t bufs_bytes = 0;
  char* buf_mem = nullptr;
  int wake_fd = -1;
  std::uint64_t wake_value = 0;
};

io_ring* io_ring::create() noexcept {
  auto* st = new (std::nothrow) state;
  if (!st) return nullptr;
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = kEntries * 16;
  if (io_uring_queue_init_params(kEntries, &st->ring, &p) < 0) {
    delete st;
    return nullptr;
  }
  ring_memory_just_mapped();
  st->bufs_bytes = kBuffers * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, st->bufs_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  st->buf_mem = static_cast<char*>(std::malloc(std::size_t(kBuffers) * kBufferBytes));
  st->wake_fd = ::eventfd(0, EFD_CLOEXEC);
  io_uring_buf_reg reg{};
  if (mem != MAP_FAILED) {
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
    reg.ring_entries = kBuffers;
    reg.bgid = 0;
  }
  if (mem == MAP_FAILED || !st->buf_mem || st->wake_fd < 0 || io_uring_register_buf_ring(&st->ring, &reg, 0) < 0) {
    if (mem != MAP_FAILED) ::munmap(mem, st->bufs_bytes);
    std::free(st->buf_mem);
    if (st->wake_fd >= 0) ::close(st->wake_fd);
    ring_memory_about_to_be_unmapped();
    io_uring_queue_exit(&st->ring);
    delete st;
    return nullptr;
  }
  st->bufs = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(st->bufs);
  for (unsigned i = 0; i < kBuffers; ++i)
    io_uring_buf_ring_add(st->bufs, st->buf_mem + std::size_t(i) * kBufferBytes, kBufferBytes, std::uint16_t(i),
                          io_uring_buf_ring_mask(kBuffers), int(i));
  io_uring_buf_ring_advance(st->bufs, kBuffers);
  auto* r = new (std::nothrow) io_ring;
  if (!r) {
    ring_memory_about_to_be_unmapped();
    io_uring_queue_exit(&st->ring);
    delete st;
    return nullptr;
  }
  r->st_ = st;
  r->arm_wake();
  return r;
}

io_ring::~io_ring() {
  // Cancel what is in flight and collect the completions, so that every stream drops the
  // references its operations hold (a bounded wait: cancelled socket operations end at once).
  stopping_ = true;
  if (io_uring_sqe* s = sqe()) {
    io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(s, kIgnoreTag);
  }
  for (int i = 0; i < 100 && in_flight_ > 0; ++i) wait(10);
  // Operations other threads handed over that no ring took: drop their references. (The list
  // is taken first: ring_orphan holds a stream's lock when it takes the list's.)
  std::vector<std::pair<ring_stream*, bool>> left;
  {
    std::lock_guard lock(g_orphan_mu);
    if (g_rt == nullptr || g_rt->stopping.load()) {
      left.swap(g_orphans);
      g_orphans_waiting.store(false, std::memory_order_relaxed);
    }
  }
  for (auto& [s, recv] : left) {
    s->lock();
    if (recv) {
      s->recv_armed = false;
      s->eof = true;
    } else {
      s->send_in_flight = false;
      s->broken = true;
      s->sending.clear();
      s->queued.clear();
      s->sent = 0;
    }
    s->unlock();
    drop_ref(s);
  }
  ring_memory_about_to_be_unmapped();
  io_uring_queue_exit(&st_->ring);
  ::munmap(st_->bufs, st_->bufs_bytes);
  std::free(st_->buf_mem);
  ::close(st_->wake_fd);
  delete st_;
}

io_uring_sqe* io_ring::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&st_->ring);
  if (!s) {
    io_uring_submit(&st_->ring);  // full: make room (inline completions just wait in the queue)
    s = io_uring_get_sqe(&st_->ring);
  }
  if (s) ++queued_;
  return s;
}

void io_ring::arm_wake() {
  if (stopping_) return;
  if (io_uring_sqe* s = sqe()) {
    io_uring_prep_read(s, st_->wake_fd, &st_->wake_value, sizeof st_->wake_value, 0);
    io_uring_sqe_set_data64(s, kWakeTag);
  }
}

void io_ring::wake() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(st_->wake_fd, &one, sizeof one);
}

void io_ring::watch_epoll(int epfd) {
  if (epoll_watched_) return;
  if (io_uring_sqe* s = sqe()) {
    io_uring_prep_poll_add(s, epfd, POLLIN);
    io_uring_sqe_set_data64(s, kEpollTag);
    epoll_watched_ = true;
  }
}

void io_ring::queue_recv(ring_stream* s) {
  io_uring_sqe* q = sqe();
  if (!q) {  // the kernel took nothing even after a submit: hand it to the next poll
    ring_orphan(s, true);
    return;
  }
  io_uring_prep_recv(q, s->fd, nullptr, kBufferBytes, 0);
  q->flags |= IOSQE_BUFFER_SELECT;
  q->buf_group = 0;
  io_uring_sqe_set_data64(q, reinterpret_cast<std::uint64_t>(s));
  ++in_flight_;
}

void io_ring::queue_send(ring_stream* s) {
  io_uring_sqe* q = sqe();
  if (!q) {
    ring_orphan(s, false);
    return;
  }
  io_uring_prep_send(q, s->fd, s->sending.data() + s->sent, s->sending.size() - s->sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(q, reinterpret_cast<std::uint64_t>(s) | kSendBit);
  ++in_flight_;
}

void io_ring::adopt_orphans() {
  if (!g_orphans_waiting.load(std::memory_order_acquire) || stopping_) return;
  std::vector<std::pair<ring_stream*, bool>> mine;
  {
    std::lock_guard lock(g_orphan_mu);
    mine.swap(g_orphans);
    g_orphans_waiting.store(false, std::memory_order_relaxed);
  }
  for (auto& [s, recv] : mine) {
    s->lock();
    if (recv) queue_recv(s);
    else queue_send(s);
    s->unlock();
  }
}

void io_ring::poll() {
  adopt_orphans();
  io_uring_submit_and_get_events(&st_->ring);
  queued_ = 0;
  handle_batch();
}

void io_ring::wait(int timeout_ms) {
  adopt_orphans();
  if (timeout_ms < 0) {
    io_uring_submit_and_wait(&st_->ring, 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (timeout_ms % 1000) * 1'000'000LL;
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&st_->ring, &cqe, 1, &ts, nullptr);
  }
  queued_ = 0;
  handle_batch();
}

void io_ring::handle_batch() {
  wake_batch batch;  // what the completions make runnable, this worker runs next
  io_uring_cqe* cqes[64];
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(&st_->ring, cqes, 64);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) complete(cqes[i]->user_data, cqes[i]->res, cqes[i]->flags);
    io_uring_cq_advance(&st_->ring, n);
  }
}

void io_ring::complete(std::uint64_t ud, int res, std::uint32_t flags) {
  if (ud == kWakeTag) {
    arm_wake();
    return;
  }
  if (ud == kEpollTag) {
    epoll_watched_ = false;
    epoll_ready_ = true;
    return;
  }
  if (ud == kIgnoreTag) return;
  --in_flight_;
  auto* s = reinterpret_cast<ring_stream*>(ud & ~kSendBit);
  bool wake = false;
  if ((ud & kSendBit) == 0) {
    // A receive.
    s->lock();
    s->recv_armed = false;
    if (flags & IORING_CQE_F_BUFFER) {
      unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
      char* buf = st_->buf_mem + std::size_t(id) * kBufferBytes;
      if (res > 0 && !s->closed && !s->input.append(buf, std::size_t(res))) res = -ENOMEM;  // out of memory: end it
      io_uring_buf_ring_add(st_->bufs, buf, kBufferBytes, std::uint16_t(id), io_uring_buf_ring_mask(kBuffers), 0);
      io_uring_buf_ring_advance(st_->bufs, 1);
    }
    if (res > 0) {
      wake = true;
    } else if (res == -ENOBUFS || res == -EINTR || res == -EAGAIN) {
      // No buffer was free in this round (they are all back now) or a spurious wake: try again.
    } else {
      s->eof = true;  // end of stream, a reset, or (at shutdown) cancelled
      wake = true;
    }
    if (!s->eof && !s->closed && !stopping_ && s->input.size() < kInputLimit) {
      s->recv_armed = true;
      s->refs.fetch_add(1, std::memory_order_relaxed);
      queue_recv(s);
    }
    wake = wake && !s->closed;
    s->unlock();
  } else {
    // A send.
    s->lock();
    if (res > 0) {
      s->sent += std::uint32_t(res);
    } else if (res != -EINTR && res != -EAGAIN) {
      s->broken = true;  // EPIPE, ECONNRESET, the user timeout, or cancelled at shutdown
      s->sending.clear();
      s->queued.clear();
      s->sent = 0;
    }
    bool more = false;
    if (!s->broken && s->sent < s->sending.size() && !stopping_) {
      more = true;  // a partial send: the rest
    } else if (!s->broken && !stopping_) {
      s->sending.clear(kKeepBytes);
      s->sent = 0;
      if (!s->queued.empty()) {
        s->sending.swap(s->queued);
        more = true;
      }
    }
    if (more) {
      s->refs.fetch_add(1, std::memory_order_relaxed);
      queue_send(s);
    } else {
      if (!s->sending.empty() || !s->queued.empty()) {  // not sent (stopping): never resend it later
        s->broken = true;
        s->sending.clear();
        s->queued.clear();
        s->sent = 0;
      }
      s->send_in_flight = false;
      if (s->shut_write) ::shutdown(s->fd, s->closed ? SHUT_RDWR : SHUT_WR);
      if (s->want_writable || s->broken) wake = !s->closed;
      s->want_writable = false;
    }
    if (more && s->want_writable && s->queued.empty()) {
      // Room again (the queue moved to the kernel side): let a blocked writer go on.
      s->want_writable = false;
      wake = !s->closed;
    }
    s->unlock();
  }
  if (wake) wake_owner(s);
  drop_ref(s);
}

ring_stream* ring_attach(int fd, pid owner) {
  io_ring* r = tls().ring;
  if (!r) return nullptr;
  auto* s = new ring_stream;
  s->fd = fd;
  s->owner = owner;
  s->lock();
  s->recv_armed = true;
  s->refs.fetch_add(1, std::memory_order_relaxed);
  r->queue_recv(s);
  s->unlock();
  return s;
}

#else  // no liburing: every socket uses the epoll path

struct io_ring::state {};
io_ring* io_ring::create() noexcept { return nullptr; }
io_ring::~io_ring() {}
void io_ring::poll() {}
void io_ring::wait(int) {}
void io_ring::wake() noexcept {}
void io_ring::watch_epoll(int) {}
void io_ring::queue_recv(ring_stream*) {}
void io_ring::queue_send(ring_stream*) {}
ring_stream* ring_attach(int, pid) { return nullptr; }

#endif

}  // namespace athanor::detail
