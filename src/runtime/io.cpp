// The I/O poller and TCP sockets.
//
// A process waits for a socket in one of two ways. By default each wait arms one-shot interest
// (epoll_ctl, EPOLLONESHOT) with the process's current wait token in the cookie, so a wake-up that
// arrives after the wait ended is recognised as stale and dropped: simple, and any process may
// wait on any fd. A process that owns a socket for its life (a WebSocket connection) attaches it
// instead (attach_fd): one edge-triggered registration for both directions, whose cookie carries
// the edge bit and no token. Each edge then reaches the process as a wake-up: it ends a wait on
// that fd (kEdgeWaiting), or is remembered (kEdgePending) so that the next wait returns at once
// and the caller looks again. Invariant: a process never parks on its attached fd with an edge
// it has not looked at; the price is at most one spare read per edge, against an epoll_ctl per
// wait saved. When the worker has an io_uring (uring.cpp), an attached socket's bytes come and go
// through it instead, and its completions send the same edge wake-ups, so the waits here are
// the same on both paths.
#include "athanor/runtime/io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "runtime/internal.h"
#include "runtime/services.h"
#include "runtime/uring.h"

namespace athanor {
namespace detail {

namespace {
constexpr std::uint64_t kEventFdTag = ~std::uint64_t(0);

// epoll's 64-bit cookie: index (28 bits) | generation (20 bits) | edge (1 bit) | token (15 bits).
// Tokens are compared on their low 15 bits (handle_signal); an attached fd's cookie has the edge
// bit and no token.
constexpr std::uint64_t kEdgeBit = 0x8000;
std::uint64_t encode(pid p, std::uint32_t token) {
  return (std::uint64_t(p.index()) << 36) | (std::uint64_t(p.generation()) << 16) | (token & 0x7FFF);
}
}  // namespace

netpoll::netpoll() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  eventfd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || eventfd_ < 0) throw std::system_error(errno, std::generic_category(), "athanor: epoll/eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEventFdTag;
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, eventfd_, &ev);
}

netpoll::~netpoll() {
  ::close(eventfd_);
  ::close(epfd_);
}

int netpoll::poll(int timeout_ms) {
  epoll_event events[256];
  int n = ::epoll_wait(epfd_, events, 256, timeout_ms);
  if (n <= 0) return 0;
  wake_batch batch;  // on a worker: what becomes runnable here, it runs next
  for (int i = 0; i < n; ++i) {
    std::uint64_t d = events[i].data.u64;
    if (d == kEventFdTag) {
      std::uint64_t v;
      [[maybe_unused]] auto r = ::read(eventfd_, &v, sizeof v);
      continue;
    }
    pid target(0, std::uint32_t(d >> 36), std::uint32_t(d >> 16) & pid::kGenerationMask);
    deliver(target, make_envelope<sig_wake>(true, std::uint32_t(d & 0x7FFF), (d & kEdgeBit) != 0));
  }
  return n;
}

void netpoll::interrupt() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(eventfd_, &one, sizeof one);
}

int netpoll::arm(int fd, std::uint32_t events, pid p, std::uint32_t token) noexcept {
  epoll_event ev{};
  ev.events = events | EPOLLONESHOT | EPOLLRDHUP;
  ev.data.u64 = encode(p, token);
  if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
  if (errno != ENOENT) return errno;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
  return errno;
}

int netpoll::attach(int fd, pid p) noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = encode(p, 0) | kEdgeBit;
  if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
  if (errno != ENOENT) return errno;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
  return errno;
}

void netpoll::forget(int fd) noexcept { ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

}  // namespace detail

void detail::fd_wait::await_suspend(std::coroutine_handle<> h) {
  process* p = detail::tls().current;
  if (!p || !g_rt) throw std::logic_error("athanor: socket operations must be awaited in a process");
  auto& s = process_access::st(p);
  s.flags &= ~kEventFired;
  std::uint32_t token = ++s.wait_token;
  s.wait = wait_kind::event;
  s.resume_point = h;
  if (g_rt->poll->arm(fd, events, s.self_pid, token) != 0) s.flags |= kEventFired;  // retry reports the error
}

namespace detail {
namespace {
// The match function of io_wait's mailbox mode: it never takes a message (it stays queued for the
// process's own receive) but ends the wait, by marking the receive as timed out, when one exists.
bool match_any_message(receive_state* r, envelope* e) {
  auto* w = static_cast<fd_wait_for*>(r);
  if (w->wake_type && e->type != w->wake_type) return false;
  w->got_message = true;
  r->timed_out = true;
  return false;
}
}  // namespace

// One wait token covers the three ways out (epoll, timer, mailbox): whichever comes first makes
// the process runnable; the others arrive with a stale token and are ignored. In mailbox mode
// the wait is a receive (so message arrivals re-check it) whose match function never matches.
void fd_wait_for::await_suspend(std::coroutine_handle<> h) {
  process* p = tls().current;
  if (!p || !g_rt) throw std::logic_error("athanor::io_wait must be awaited in a process");
  auto& s = process_access::st(p);
  s.flags &= ~kEventFired;
  std::uint32_t token = ++s.wait_token;
  s.resume_point = h;
  if (wake_on_message) {
    match = &match_any_message;
    timeout_ms = -1;  // the receive's own timeout: none (ours is the timer above)
    s.receiving = this;
    s.wait = wait_kind::receive;
  } else {
    s.wait = wait_kind::event;
  }
  if (attached) {
    // Nothing to arm. An edge that came since the caller last looked may mean new bytes: resume
    // at once and let it look again (a spare read costs less than a lost wake-up).
    if (s.flags & kEdgePending) {
      s.flags &= ~kEdgePending;
      if (wake_on_message) timed_out = true;
      else s.flags |= kEventFired;
      return;
    }
    s.flags |= kEdgeWaiting;
  } else if (g_rt->poll->arm(fd, events, s.self_pid, token) != 0) {
    // Not pollable (closed or bad fd): resume at once; the caller's next syscall reports it.
    if (wake_on_message) timed_out = true;
    else s.flags |= kEventFired;
    return;
  }
  if (wait_ms >= 0) {
    std::uint64_t now = now_ms();
    deadline_ms = now + std::uint64_t(wait_ms);
    if (lazy) {
      // Keep the armed timer if it fires by our deadline (its edge ends this wait; the caller
      // waits again); else (none, fired, or too late) arm one for our deadline.
      if (!(lazy->handle && lazy->at_ms > now && lazy->at_ms <= deadline_ms)) {
        if (lazy->handle) g_rt->timers->cancel(lazy->handle);
        lazy->handle = g_rt->timers->start(wait_ms, s.self_pid, make_envelope<sig_wake>(true, 0u, true));
        lazy->at_ms = deadline_ms;
      }
    } else {
      timer_handle = g_rt->timers->start(wait_ms, s.self_pid, make_envelope<sig_wake>(true, token));
    }
  }
}

lazy_deadline::~lazy_deadline() {
  if (handle && g_rt) g_rt->timers->cancel(handle);
}

io_wait_result fd_wait_for::await_resume() noexcept {
  process* p = tls().current;
  auto& s = process_access::st(p);
  if (wake_on_message) s.receiving = nullptr;
  s.flags &= ~kEdgeWaiting;
  ++s.wait_token;  // wake-ups still in flight for this wait are now stale
  if (timer_handle) {
    g_rt->timers->cancel(timer_handle);
    timer_handle = 0;
  }
  if (got_message) return io_wait_result::message;
  if (wait_ms >= 0 && now_ms() >= deadline_ms) return io_wait_result::timeout;
  return io_wait_result::ready;
}

int attach_fd(int fd, pid owner) noexcept { return g_rt ? g_rt->poll->attach(fd, owner) : ENXIO; }

fd_wait_for::~fd_wait_for() {
  // Destroyed while suspended (the process was killed): the timer must not outlive the frame's
  // interest in it; its payload is harmless but the slot is not.
  if (timer_handle && g_rt) g_rt->timers->cancel(timer_handle);
}

}  // namespace detail

// ---- sockets ------------------------------------------------------------------------------

namespace {

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

void set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL, 0);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) fail("athanor: fcntl(O_NONBLOCK)");
}

sockaddr_in resolve(const std::string& host, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  std::string h = host == "localhost" || host.empty() ? "127.0.0.1" : host;
  if (::inet_pton(AF_INET, h.c_str(), &a.sin_addr) != 1) {
    errno = EINVAL;
    fail(("athanor: not an IPv4 address: " + host).c_str());
  }
  return a;
}

}  // namespace

tcp_socket::tcp_socket(int fd) : fd_(fd) {
  if (fd_ >= 0) {
    set_nonblocking(fd_);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}
tcp_socket::tcp_socket(tcp_socket&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), attached_(std::exchange(o.attached_, false)), ring_(std::exchange(o.ring_, nullptr)) {}
tcp_socket& tcp_socket::operator=(tcp_socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    attached_ = std::exchange(o.attached_, false);
    ring_ = std::exchange(o.ring_, nullptr);
  }
  return *this;
}
tcp_socket::~tcp_socket() { close(); }

int tcp_socket::attach(pid owner, bool completion) noexcept {
  if (fd_ < 0) return EBADF;
  if (attached_) return 0;
  if (completion) {
    try {
      ring_ = detail::ring_attach(fd_, owner);
    } catch (const std::bad_alloc&) {
      ring_ = nullptr;
    }
  }
  int rc = ring_ ? 0 : detail::attach_fd(fd_, owner);
  attached_ = rc == 0;
  return rc;
}

void tcp_socket::close() noexcept {
  if (ring_) {
    detail::ring_close(ring_);  // the fd closes when the operations in flight on it have ended
    ring_ = nullptr;
    fd_ = -1;
  } else if (fd_ >= 0) {
    ::close(fd_);  // also removes it from the epoll set
    fd_ = -1;
  }
  attached_ = false;
}

void tcp_socket::shutdown_write() noexcept {
  if (ring_) detail::ring_shutdown_write(ring_);
  else if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

std::uint16_t tcp_socket::local_port() const {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) < 0) fail("athanor: getsockname");
  return ntohs(a.sin_port);
}

task<tcp_socket> tcp_socket::connect(std::string host, std::uint16_t port) {
  sockaddr_in a = resolve(host, port);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("athanor: socket");
  tcp_socket sock(fd);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    if (errno != EINPROGRESS) fail("athanor: connect");
    co_await detail::fd_wait{fd, EPOLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      errno = err;
      fail("athanor: connect");
    }
  }
  co_return sock;
}

task<std::size_t> tcp_socket::read(std::span<std::byte> buf) {
  if (attached_) {
    for (;;) {
      io_result r = try_read(buf);
      if (r.eof) co_return 0;
      if (!r.would_block) co_return r.n;
      co_await detail::fd_wait_for(fd_, EPOLLIN, -1, false, nullptr, true);
    }
  }
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) co_return std::size_t(n);
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) co_return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail("athanor: read");
    co_await detail::fd_wait{fd_, EPOLLIN};
  }
}

io_result tcp_socket::try_read(std::span<std::byte> buf) {
  if (ring_) {
    detail::ring_io_result r = detail::ring_read(ring_, reinterpret_cast<char*>(buf.data()), buf.size());
    return io_result{r.n, r.eof, r.would_block};
  }
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n > 0) return io_result{std::size_t(n), false, false};
    if (n == 0) return io_result{0, true, false};
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return io_result{0, true, false};
    if (errno == EAGAIN || errno == EWOULDBLOCK) return io_result{0, false, true};
    fail("athanor: read");
  }
}

io_result tcp_socket::try_write(std::span<const std::byte> buf) {
  if (ring_) {
    detail::ring_io_result r = detail::ring_write(ring_, std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
    if (r.eof) {
      errno = EPIPE;
      fail("athanor: write");
    }
    return io_result{r.n, false, r.would_block};
  }
  for (;;) {
    ssize_t n = ::send(fd_, buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n >= 0) return io_result{std::size_t(n), false, false};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return io_result{0, false, true};
    fail("athanor: write");
  }
}

std::string tcp_socket::peer_name() const {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (fd_ < 0 || ::getpeername(fd_, reinterpret_cast<sockaddr*>(&a), &len) < 0 || a.sin_family != AF_INET) return {};
  char ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

bool tcp_socket::set_buffer_sizes(int send_bytes, int receive_bytes) noexcept {
  bool ok = true;
  if (send_bytes > 0) ok &= ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &send_bytes, sizeof send_bytes) == 0;
  if (receive_bytes > 0) ok &= ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_bytes, sizeof receive_bytes) == 0;
  return ok;
}

task<bool> tcp_socket::read_exactly(std::span<std::byte> buf) {
  std::size_t got = 0;
  while (got < buf.size()) {
    std::size_t n = co_await read(buf.subspan(got));
    if (n == 0) co_return false;
    got += n;
  }
  co_return true;
}

task<void> tcp_socket::write_all(std::span<const std::byte> buf) {
  std::size_t done = 0;
  if (attached_) {
    while (done < buf.size()) {
      io_result r = try_write(buf.subspan(done));
      done += r.n;
      if (r.would_block) co_await detail::fd_wait_for(fd_, EPOLLOUT, -1, false, nullptr, true);
    }
    co_return;
  }
  while (done < buf.size()) {
    ssize_t n = ::send(fd_, buf.data() + done, buf.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += std::size_t(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail("athanor: write");
    co_await detail::fd_wait{fd_, EPOLLOUT};
  }
}

tcp_listener::tcp_listener(tcp_listener&& o) noexcept : fd_(std::exchange(o.fd_, -1)), port_(o.port_) {}
tcp_listener& tcp_listener::operator=(tcp_listener&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    port_ = o.port_;
  }
  return *this;
}
tcp_listener::~tcp_listener() { close(); }

void tcp_listener::close() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

tcp_listener tcp_listener::listen(const std::string& host, std::uint16_t port, int backlog, bool reuse_port) {
  sockaddr_in a = resolve(host, port);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("athanor: socket");
  tcp_listener l;
  l.fd_ = fd;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) fail("athanor: bind");
  if (::listen(fd, backlog) < 0) fail("athanor: listen");
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  l.port_ = ntohs(bound.sin_port);
  return l;
}

tcp_listener tcp_listener::duplicate() const {
  int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) fail("athanor: dup");
  tcp_listener l;
  l.fd_ = fd;
  l.port_ = port_;
  return l;
}

tcp_socket tcp_listener::try_accept() {
  int error = 0;
  tcp_socket s = try_accept(error);
  if (error != 0) {
    errno = error;
    fail("athanor: accept");
  }
  return s;
}

tcp_socket tcp_listener::try_accept(int& error) noexcept {
  error = 0;
  for (;;) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return tcp_socket(fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) error = errno;
    return tcp_socket();
  }
}

task<tcp_socket> tcp_listener::accept() {
  for (;;) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) co_return tcp_socket(fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail("athanor: accept");
    co_await detail::fd_wait{fd_, EPOLLIN};
  }
}

}  // namespace athanor
