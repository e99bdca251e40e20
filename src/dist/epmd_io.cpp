// Socket helpers with deadlines for the EPMD client and server (see epmd_io.h).
//
// tcp_socket's own read/write/connect wait without a deadline, which suits a process that owns a
// connection for good but not a request to a daemon that may be wedged, nor a server facing a
// client that connects and goes quiet. These loops use the non-blocking calls (try_read,
// try_write) and io_wait with the time left, so each wait is bounded and still costs no thread.
#include "dist/epmd_io.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "athanor/dist/epmd_wire.h"
#include "athanor/runtime/dirty.h"

namespace athanor::dist::epmd_detail {

namespace {

[[noreturn]] void timed_out(const char* what) {
  throw std::system_error(ETIMEDOUT, std::generic_category(), std::string("athanor: EPMD ") + what + " timed out");
}

// The time left before `deadline`, rounded up to whole milliseconds; -1 for no deadline, 0 when
// it has passed.
std::chrono::milliseconds time_left(clock::time_point deadline) {
  if (deadline == clock::time_point::max()) return std::chrono::milliseconds(-1);
  auto now = clock::now();
  if (now >= deadline) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
}

// Waits until fd is ready for `events`; throws ETIMEDOUT when the deadline passes first.
task<void> wait_ready(int fd, std::uint32_t events, clock::time_point deadline, const char* what) {
  std::chrono::milliseconds left = time_left(deadline);
  if (left.count() == 0) timed_out(what);
  if (co_await io_wait(fd, events, left) == io_wait_result::timeout) timed_out(what);
}

}  // namespace

clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  if (timeout.count() < 0) return clock::time_point::max();
  return clock::now() + timeout;
}

bool is_loopback(std::string_view host) noexcept {
  if (host == "localhost") return true;
  std::string h(host);
  in_addr a{};
  if (::inet_pton(AF_INET, h.c_str(), &a) != 1) return false;
  return (ntohl(a.s_addr) >> 24) == 127;
}

task<tcp_socket> connect_before(std::string host, std::uint16_t port, clock::time_point deadline) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  std::string numeric = host.empty() || host == "localhost" ? std::string("127.0.0.1") : host;
  if (::inet_pton(AF_INET, numeric.c_str(), &addr.sin_addr) != 1) {
    // A host name: getaddrinfo blocks (DNS), so it runs on a dirty I/O thread.
    in_addr found{};
    bool resolved = co_await dirty_io([&numeric, &found]() -> bool {
      addrinfo hints{};
      hints.ai_family = AF_INET;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      if (::getaddrinfo(numeric.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return false;
      found = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
      ::freeaddrinfo(res);
      return true;
    });
    if (!resolved)
      throw std::system_error(EHOSTUNREACH, std::generic_category(), "athanor: EPMD host " + host + " does not resolve");
    addr.sin_addr = found;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "athanor: socket");
  tcp_socket sock(fd);
  std::string where = "athanor: connect to EPMD at " + host + ":" + std::to_string(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    if (errno != EINPROGRESS) throw std::system_error(errno, std::generic_category(), where);
    for (;;) {
      co_await wait_ready(fd, io_writable, deadline, "connect");
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) throw std::system_error(err, std::generic_category(), where);
      sockaddr_in peer{};
      socklen_t plen = sizeof peer;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) break;  // connected
      // A spare wake-up while the connection is still in progress: wait again.
    }
  }
  co_return sock;
}

task<std::size_t> read_some_before(tcp_socket& s, std::span<std::byte> buf, clock::time_point deadline) {
  for (;;) {
    io_result r = s.try_read(buf);
    if (r.eof) co_return 0;
    if (!r.would_block) co_return r.n;
    co_await wait_ready(s.native_handle(), io_readable, deadline, "read");
  }
}

task<bool> read_exactly_before(tcp_socket& s, std::span<std::byte> buf, clock::time_point deadline) {
  std::size_t got = 0;
  while (got < buf.size()) {
    std::size_t n = co_await read_some_before(s, buf.subspan(got), deadline);
    if (n == 0) co_return false;
    got += n;
  }
  co_return true;
}

task<std::string> read_to_end_before(tcp_socket& s, std::size_t max_bytes, clock::time_point deadline) {
  std::string out;
  char chunk[4096];
  for (;;) {
    std::size_t n = co_await read_some_before(s, std::as_writable_bytes(std::span(chunk)), deadline);
    if (n == 0) co_return out;
    if (out.size() + n > max_bytes)
      throw epmd_error("EPMD reply longer than " + std::to_string(max_bytes) + " bytes");
    out.append(chunk, n);
  }
}

task<void> write_all_before(tcp_socket& s, std::string bytes, clock::time_point deadline) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    io_result r = s.try_write(std::as_bytes(std::span(bytes.data() + done, bytes.size() - done)));
    done += r.n;
    if (r.would_block) co_await wait_ready(s.native_handle(), io_writable, deadline, "write");
  }
}

}  // namespace athanor::dist::epmd_detail
