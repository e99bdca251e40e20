// athanor-loadgen: a WebSocket load generator for Athanor (or any RFC 6455 echo server).
//
//   athanor-loadgen --port 4000 --connections 19900 --workers 2 --sources 8 --server-pid PID
//                   [--path /echo?join=1] [--duration 2] [--size 32] [--broadcast] [--hold 0]
//   (athanor-loadgen --help describes every flag)
//
// Opens N WebSocket connections from W forked worker processes (each has its own descriptor
// limit: 20,000 here), spread over loopback source addresses 127.0.0.1 .. 127.0.0.S so that no
// source address runs out of ephemeral ports, and keeps them open. Then, for --duration seconds,
// every connection runs a closed loop (send a message stamped with the send time, wait for its
// echo, send the next), and with --broadcast it asks the server for one broadcast
// (GET /broadcast) and measures when the last connection received it. Each worker is a single
// epoll loop; the parent coordinates phases over pipes and prints one JSON object per line:
//   {"event":"connected","connections":..,"failed":..,"seconds":..,"server_rss_kib":..,"rss_bytes_per_connection":..}
//   (rss_bytes_per_connection: the server's RSS growth from the first 1% of connections to all
//   of them, divided by the connections in between: what one more connection costs)
//   {"event":"echo","connections":..,"messages":..,"msgs_per_sec":..,"p50_us":..,"p99_us":..}
//   {"event":"broadcast","receivers":..,"expected":..,"ms_to_all":..}
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "athanor/web/websocket.h"
#include "command_line.h"

#ifdef ATHANOR_LOADGEN_URING
#include <liburing.h>
#endif

namespace {

struct options {
  std::string host = "127.0.0.1";
  int port = 4000;
  std::string path = "/echo";
  int connections = 1000;
  int workers = 1;
  int sources = 8;
  int server_pid = 0;
  double duration = 2;
  int size = 32;
  bool broadcast = false;
  double hold = 0;
  bool uring = true;  // the echo phase through io_uring when built with it (--epoll: not)
};

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // system-wide: comparable between the workers and the parent
  return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

long rss_kib(int pid) {
  if (pid <= 0) return -1;
  std::string path = "/proc/" + std::to_string(pid) + "/status";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  std::fclose(f);
  return kib;
}

// ---- a worker: one epoll loop over its connections ----

struct connection {
  int fd = -1;
  bool upgraded = false;
  bool waiting_echo = false;
  bool got_broadcast = false;
  std::string in;
};

void write_line(int fd, const std::string& s) {
  std::string l = s + "\n";
  [[maybe_unused]] auto n = ::write(fd, l.data(), l.size());
}

std::string read_line(int fd) {
  std::string s;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') s.push_back(c);
  return s;
}

bool send_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += std::size_t(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    return false;
  }
  return true;
}

std::string message(int size, std::int64_t stamp) {
  std::string m = std::to_string(stamp);
  if (int(m.size()) < size) m.append(std::size_t(size) - m.size(), '.');
  std::string f;
  athanor::web::ws_encode_frame(f, athanor::web::ws_opcode::text, m, true, false, 0x5a5a5a5au);
  return f;
}

// Extracts whole unmasked server frames from c.in; calls on(payload) for text/binary ones.
template <class F>
void frames(connection& c, F on) {
  for (;;) {
    if (c.in.size() < 2) return;
    std::size_t len = std::uint8_t(c.in[1]) & 0x7f, hdr = 2;
    if (len == 126) {
      if (c.in.size() < 4) return;
      len = (std::size_t(std::uint8_t(c.in[2])) << 8) | std::uint8_t(c.in[3]);
      hdr = 4;
    } else if (len == 127) {
      if (c.in.size() < 10) return;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | std::uint8_t(c.in[2 + i]);
      hdr = 10;
    }
    if (c.in.size() < hdr + len) return;
    int op = std::uint8_t(c.in[0]) & 0x0f;
    if (op == 1 || op == 2) on(std::string_view(c.in).substr(hdr, len));
    c.in.erase(0, hdr + len);
  }
}

// The echo phase's bookkeeping, shared by its two loops.
struct echo_stats {
  std::vector<std::uint32_t> lat;
  std::uint64_t msgs = 0;
  // Takes the echoes in c.in; returns true if any arrived.
  bool take(connection& c) {
    bool echoed = false;
    frames(c, [&](std::string_view p) {
      std::int64_t sent = std::atoll(std::string(p.substr(0, p.find('.'))).c_str());
      std::int64_t us = (now_ns() - sent) / 1000;
      if (lat.size() < 4000000) lat.push_back(std::uint32_t(std::max<std::int64_t>(0, us)));
      ++msgs;
      echoed = true;
    });
    return echoed;
  }
};

#ifdef ATHANOR_LOADGEN_URING
// The echo phase through io_uring: every connection keeps one receive queued, and each loop
// submits all the sends and receives it queued in one system call. The load generator shares
// the cores with the server it measures, and on this VM a system call costs ~1 us (page-table
// isolation), so the epoll loop's recv + send + epoll_wait per message is CPU taken from the
// server; this loop spends about one call per batch instead. Returns false if io_uring is
// unavailable (the caller then runs the epoll loop).
bool echo_uring(const options& o, std::vector<connection>& conns, echo_stats& st) {
  struct slot {
    std::string out;       // the frame being sent (kept until its completion)
    std::size_t sent = 0;  // bytes of it sent so far
    bool sending = false;
    bool recv_queued = false;
    char buf[2048];
  };
  io_uring ring;
  unsigned depth = 64;
  while (depth < 2 * conns.size() + 64 && depth < 32768) depth *= 2;
  // Completions are reaped only when this thread asks (no interrupting task work): the
  // cheapest mode, where the kernel has it (6.1+); else the plain one.
  if (::io_uring_queue_init(depth, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) != 0 &&
      ::io_uring_queue_init(depth, &ring, 0) != 0) {
    return false;
  }
  std::vector<slot> slots(conns.size());
  auto sqe = [&] {
    io_uring_sqe* e = ::io_uring_get_sqe(&ring);
    if (e == nullptr) {  // the queue is full: hand what is queued to the kernel first
      ::io_uring_submit(&ring);
      e = ::io_uring_get_sqe(&ring);
    }
    return e;
  };
  auto queue_send = [&](std::size_t i) {
    io_uring_sqe* e = sqe();
    ::io_uring_prep_send(e, conns[i].fd, slots[i].out.data() + slots[i].sent, slots[i].out.size() - slots[i].sent,
                         MSG_NOSIGNAL);
    ::io_uring_sqe_set_data64(e, std::uint64_t(i) << 1 | 1);
    slots[i].sending = true;
  };
  auto queue_recv = [&](std::size_t i) {
    io_uring_sqe* e = sqe();
    ::io_uring_prep_recv(e, conns[i].fd, slots[i].buf, sizeof slots[i].buf, 0);
    ::io_uring_sqe_set_data64(e, std::uint64_t(i) << 1);
    slots[i].recv_queued = true;
  };
  auto send_message = [&](std::size_t i) {
    slots[i].out = message(o.size, now_ns());
    slots[i].sent = 0;
    queue_send(i);
  };
  for (std::size_t i = 0; i < conns.size(); ++i) {
    if (conns[i].fd < 0) continue;
    send_message(i);
    conns[i].waiting_echo = true;
    queue_recv(i);
  }
  const std::int64_t end = now_ns() + std::int64_t(o.duration * 1e9);
  std::int64_t drain_end = 0;  // after `end`: wait up to a second for the echoes in flight
  int in_flight = 0;
  for (auto& c : conns) in_flight += c.waiting_echo;
  for (;;) {
    const std::int64_t now = now_ns();
    if (now >= end && drain_end == 0) drain_end = now + 1000000000;
    if (drain_end != 0 && (now >= drain_end || in_flight == 0)) break;
    __kernel_timespec timeout{0, 100000000};
    io_uring_cqe* cqe = nullptr;
    ::io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &timeout, nullptr);
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const std::size_t i = std::size_t(cqe->user_data >> 1);
      connection& c = conns[i];
      slot& sl = slots[i];
      if (c.fd < 0) continue;
      if (cqe->user_data & 1) {  // a send finished
        sl.sending = false;
        if (cqe->res < 0) continue;  // the receive reports the broken connection
        sl.sent += std::size_t(cqe->res);
        if (sl.sent < sl.out.size()) queue_send(i);
        continue;
      }
      sl.recv_queued = false;
      if (cqe->res <= 0) {
        if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
          queue_recv(i);
          continue;
        }
        if (c.waiting_echo) --in_flight;
        c.waiting_echo = false;
        ::close(c.fd);
        c.fd = -1;
        continue;
      }
      c.in.append(sl.buf, std::size_t(cqe->res));
      if (st.take(c)) {
        if (drain_end == 0 && !sl.sending) {
          send_message(i);
        } else {
          c.waiting_echo = false;
          --in_flight;
        }
      }
      if (c.waiting_echo || drain_end == 0) queue_recv(i);
    }
    ::io_uring_cq_advance(&ring, seen);
  }
  // Receives still queued would take data meant for the next phase's epoll loop: cancel
  // them all (the ring's teardown does) and start that phase with empty buffers.
  ::io_uring_queue_exit(&ring);
  for (auto& c : conns) {
    c.in.clear();
    c.waiting_echo = false;
  }
  return true;
}
#endif

// The echo phase through epoll: a recv and a send per message.
void echo_epoll(const options& o, std::vector<connection>& conns, int ep, echo_stats& st) {
  epoll_event evs[1024];
  std::int64_t end = now_ns() + std::int64_t(o.duration * 1e9);
  for (auto& c : conns) {
    if (c.fd < 0) continue;
    if (send_all(c.fd, message(o.size, now_ns()))) c.waiting_echo = true;
  }
  while (now_ns() < end) {
    int n = ::epoll_wait(ep, evs, 1024, 100);
    for (int i = 0; i < n; ++i) {
      connection& c = conns[evs[i].data.u32];
      if (c.fd < 0) continue;
      char buf[65536];
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        ::close(c.fd);
        c.fd = -1;
        continue;
      }
      c.in.append(buf, std::size_t(r));
      if (st.take(c) && now_ns() < end) send_all(c.fd, message(o.size, now_ns()));
    }
  }
  // Drain the echoes still in flight so the next phase starts clean.
  std::int64_t drain_end = now_ns() + 1000000000;
  while (now_ns() < drain_end) {
    int n = ::epoll_wait(ep, evs, 1024, 50);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) {
      connection& c = conns[evs[i].data.u32];
      if (c.fd < 0) continue;
      char buf[65536];
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r > 0) c.in.clear();
    }
  }
}

int worker(const options& o, int first, int count, int report_fd, int control_fd) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<connection> conns(static_cast<std::size_t>(count));
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(std::uint16_t(o.port));
  ::inet_pton(AF_INET, o.host.c_str(), &dst.sin_addr);
  std::string upgrade = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  int failed = 0, upgraded = 0, pending = 0;
  int next = 0;
  epoll_event evs[1024];
  // A few connections first (1%, at least 1), so that the server's memory is measured from a
  // state where its fixed costs (first-touch of pools, rings, arenas) are paid: the figure is
  // then what each further connection costs. The parent says when to go on ("G").
  const int warm = count > 1 ? std::max(1, count / 100) : count;
  int limit = warm;
  bool warmed = false;
  // Connect in waves of 500 in flight, so the server's backlog is never the bottleneck.
  while (upgraded + failed < count) {
    if (!warmed && upgraded + failed >= warm) {
      warmed = true;
      write_line(report_fd, "W " + std::to_string(upgraded));
      if (read_line(control_fd).rfind("G", 0) != 0) break;
      limit = count;
    }
    while (next < limit && pending < 500) {
      connection& c = conns[std::size_t(next)];
      int idx = first + next;
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) {
        ++failed;
        ++next;
        continue;
      }
      int one = 1;
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr = htonl((127u << 24) | std::uint32_t(1 + idx % std::max(1, o.sources)));
      ::bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src);
      int rc = ::connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
      if (rc < 0 && errno != EINPROGRESS) {
        ::close(c.fd);
        c.fd = -1;
        ++failed;
        ++next;
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT | EPOLLIN;
      ev.data.u32 = std::uint32_t(next);
      ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
      ++pending;
      ++next;
    }
    int n = ::epoll_wait(ep, evs, 1024, 10000);
    if (n <= 0) break;  // nothing for 10 s: give up on the rest
    for (int i = 0; i < n; ++i) {
      connection& c = conns[evs[i].data.u32];
      if (c.upgraded || c.fd < 0) continue;
      if (evs[i].events & EPOLLOUT) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || !send_all(c.fd, upgrade)) {
          ::close(c.fd);
          c.fd = -1;
          ++failed;
          --pending;
          continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = evs[i].data.u32;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        char buf[4096];
        ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          ::close(c.fd);
          c.fd = -1;
          ++failed;
          --pending;
          continue;
        }
        c.in.append(buf, std::size_t(r));
        std::size_t end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (c.in.rfind("HTTP/1.1 101", 0) != 0) {
          ::close(c.fd);
          c.fd = -1;
          ++failed;
          --pending;
          continue;
        }
        c.in.erase(0, end + 4);
        c.upgraded = true;
        ++upgraded;
        --pending;
      }
    }
  }
  for (int i = next; i < count; ++i) ++failed;
  if (!warmed) write_line(report_fd, "W " + std::to_string(upgraded));  // (the parent waits for it)
  write_line(report_fd, "H " + std::to_string(upgraded) + " " + std::to_string(failed));

  // Wait for the parent: "E" (echo phase), "B" (broadcast phase) or "Q" (quit).
  for (;;) {
    std::string cmd = read_line(control_fd);
    if (cmd.empty() || cmd[0] == 'Q') break;
    if (cmd[0] == 'E') {
      echo_stats st;
      bool done = false;
#ifdef ATHANOR_LOADGEN_URING
      done = o.uring && echo_uring(o, conns, st);
#endif
      if (!done) echo_epoll(o, conns, ep, st);
      std::vector<std::uint32_t>& lat = st.lat;
      const std::uint64_t msgs = st.msgs;
      std::sort(lat.begin(), lat.end());
      auto pct = [&](double p) { return lat.empty() ? 0u : lat[std::min(lat.size() - 1, std::size_t(p * double(lat.size())))]; };
      // The parent merges per-worker percentiles weighted by count (exact enough for 1-2 workers).
      write_line(report_fd, "E " + std::to_string(msgs) + " " + std::to_string(pct(0.5)) + " " + std::to_string(pct(0.99)));
    } else if (cmd[0] == 'B') {
      int alive = 0, got = 0;
      for (auto& c : conns) {
        alive += c.fd >= 0;
        c.got_broadcast = false;
      }
      std::int64_t last = 0;
      std::int64_t end = now_ns() + 20000000000ll;
      while (got < alive && now_ns() < end) {
        int n = ::epoll_wait(ep, evs, 1024, 100);
        for (int i = 0; i < n; ++i) {
          connection& c = conns[evs[i].data.u32];
          if (c.fd < 0) continue;
          char buf[4096];
          ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
          if (r <= 0) continue;
          c.in.append(buf, std::size_t(r));
          frames(c, [&](std::string_view p) {
            if (p == "bcast" && !c.got_broadcast) {
              c.got_broadcast = true;
              ++got;
              last = now_ns();
            }
          });
        }
      }
      write_line(report_fd, "B " + std::to_string(got) + " " + std::to_string(last));
    }
  }
  for (auto& c : conns)
    if (c.fd >= 0) ::close(c.fd);
  return 0;
}

// One plain HTTP GET to the server (for /broadcast).
bool http_get(const options& o, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(std::uint16_t(o.port));
  ::inet_pton(AF_INET, o.host.c_str(), &dst.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    ::close(fd);
    return false;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  bool ok = send_all(fd, req);
  ::close(fd);  // the reply is not needed: receipt is measured on the WebSocket side
  return ok;
}

void print_usage() {
  std::printf(
      "Usage: athanor-loadgen [options]\n"
      "\n"
      "Opens WebSocket connections to an echo server (athanor-hello, or any RFC 6455 echo), keeps them\n"
      "open, runs a closed send/echo loop on each, and prints one JSON object per phase on stdout.\n"
      "\n"
      "Options:\n"
      "  --host ADDR           server address (default 127.0.0.1)\n"
      "  --port N              server port (default 4000)\n"
      "  --path PATH           WebSocket path (default /echo; /echo?join=1 for --broadcast)\n"
      "  --connections N       connections to open (default 1000)\n"
      "  --workers W           forked worker processes sharing the connections (default 1)\n"
      "  --sources S           loopback source addresses 127.0.0.1 .. 127.0.0.S, 1..254 (default 8)\n"
      "  --server-pid PID      the server's process id, to report its memory per connection\n"
      "  --duration SECONDS    length of the echo phase; 0 skips it (default 2)\n"
      "  --size BYTES          message size, at least 20 (default 32)\n"
      "  --broadcast           ask the server for one broadcast and time its arrival everywhere\n"
      "  --hold SECONDS        keep the connections open this long before closing (default 0)\n"
      "  --epoll               run the echo phase on epoll even when built with io_uring\n"
      "  --help                this text\n");
}

int usage_error(const std::string& message) { return athanor::tools::usage_error("athanor-loadgen", message); }

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      print_usage();
      return 0;
    }
    if (a == "--broadcast") {
      o.broadcast = true;
      continue;
    }
    if (a == "--epoll") {
      o.uring = false;
      continue;
    }
    const bool known = a == "--host" || a == "--port" || a == "--path" || a == "--connections" || a == "--workers" ||
                       a == "--sources" || a == "--server-pid" || a == "--duration" || a == "--size" || a == "--hold";
    if (!known) return usage_error((a.starts_with("-") ? "unknown flag '" : "unexpected argument '") + a + "'");
    if (i + 1 >= argc) return usage_error(a + ": expected a value after it");
    const std::string v = argv[++i];
    if (a == "--host") {
      o.host = v;
      continue;
    }
    if (a == "--path") {
      o.path = v;
      continue;
    }
    // The ranges keep every later computation (connections per worker, buffer sizes) in int.
    struct range {
      double min, max;
      bool fraction;
    };
    const range r = a == "--port"          ? range{1, 65535, false}
                    : a == "--connections" ? range{0, 2'000'000, false}
                    : a == "--workers"     ? range{1, 1024, false}
                    : a == "--sources"     ? range{1, 254, false}
                    : a == "--server-pid"  ? range{0, 2147483647, false}
                    : a == "--size"        ? range{20, 16 << 20, false}
                                           : range{0, 1e6, true};  // --duration, --hold
    double n = 0;
    std::optional<double> parsed;
    if (r.fraction) {
      parsed = athanor::tools::parse_decimal(v, r.min, r.max);
    } else if (auto i = athanor::tools::parse_integer(v, std::uint64_t(r.min), std::uint64_t(r.max))) {
      parsed = double(*i);
    }
    if (!parsed) {
      return usage_error(a + ": expected a" + (r.fraction ? " number" : "n integer") + " from " +
                         std::to_string(long(r.min)) + " to " + std::to_string(long(r.max)) + ", got '" + v + "'");
    }
    n = *parsed;
    if (a == "--port") o.port = int(n);
    else if (a == "--connections") o.connections = int(n);
    else if (a == "--workers") o.workers = int(n);
    else if (a == "--sources") o.sources = int(n);
    else if (a == "--server-pid") o.server_pid = int(n);
    else if (a == "--size") o.size = int(n);
    else if (a == "--duration") o.duration = n;
    else o.hold = n;
  }
  struct child {
    pid_t pid;
    int report, control;
  };
  std::vector<child> kids;
  std::int64_t t0 = now_ns();
  for (int w = 0; w < o.workers; ++w) {
    int first = o.connections * w / o.workers, last = o.connections * (w + 1) / o.workers;
    int rep[2], ctl[2];
    if (::pipe2(rep, O_CLOEXEC) != 0 || ::pipe2(ctl, O_CLOEXEC) != 0) return 1;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(rep[0]);
      ::close(ctl[1]);
      std::_Exit(worker(o, first, last - first, rep[1], ctl[0]));
    }
    ::close(rep[1]);
    ::close(ctl[0]);
    kids.push_back({pid, rep[0], ctl[1]});
  }
  int warm = 0;
  for (auto& k : kids) {
    int w = 0;
    std::sscanf(read_line(k.report).c_str(), "W %d", &w);
    warm += w;
  }
  long rss_before = rss_kib(o.server_pid);  // with the warm-up connections open
  for (auto& k : kids) write_line(k.control, "G");
  int held = 0, failed = 0;
  for (auto& k : kids) {
    int h = 0, f = 0;
    std::sscanf(read_line(k.report).c_str(), "H %d %d", &h, &f);
    held += h;
    failed += f;
  }
  double secs = double(now_ns() - t0) / 1e9;
  long rss_after = rss_kib(o.server_pid);
  std::printf("{\"event\":\"connected\",\"connections\":%d,\"failed\":%d,\"seconds\":%.3f", held, failed, secs);
  if (rss_after > 0) {
    std::printf(",\"server_rss_kib_before\":%ld,\"server_rss_kib\":%ld,\"rss_bytes_per_connection\":%.0f", rss_before, rss_after,
                held > warm ? double(rss_after - rss_before) * 1024.0 / (held - warm) : 0.0);
  }
  std::printf("}\n");
  std::fflush(stdout);

  if (o.duration > 0) {
    for (auto& k : kids) write_line(k.control, "E");
    std::uint64_t msgs = 0;
    double p50 = 0, p99 = 0;
    for (auto& k : kids) {
      unsigned long long m = 0;
      unsigned a = 0, b = 0;
      std::sscanf(read_line(k.report).c_str(), "E %llu %u %u", &m, &a, &b);
      msgs += m;
      p50 = std::max(p50, double(a));  // conservative merge: the worst worker's percentile
      p99 = std::max(p99, double(b));
    }
    std::printf("{\"event\":\"echo\",\"connections\":%d,\"seconds\":%.1f,\"messages\":%llu,\"msgs_per_sec\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f}\n",
                held, o.duration, static_cast<unsigned long long>(msgs), double(msgs) / o.duration, p50, p99);
    std::fflush(stdout);
  }
  if (o.broadcast) {
    for (auto& k : kids) write_line(k.control, "B");
    ::usleep(200000);  // the workers are in their receive loops before the broadcast starts
    std::int64_t sent = now_ns();
    bool ok = http_get(o, "/broadcast?text=bcast");
    int got = 0;
    std::int64_t last = 0;
    for (auto& k : kids) {
      int g = 0;
      long long l = 0;
      std::sscanf(read_line(k.report).c_str(), "B %d %lld", &g, &l);
      got += g;
      last = std::max<std::int64_t>(last, l);
    }
    std::printf("{\"event\":\"broadcast\",\"sent\":%s,\"receivers\":%d,\"expected\":%d,\"ms_to_all\":%.2f}\n", ok ? "true" : "false", got,
                held, last ? double(last - sent) / 1e6 : -1.0);
    std::fflush(stdout);
  }
  if (o.hold > 0) ::usleep(useconds_t(o.hold * 1e6));
  for (auto& k : kids) write_line(k.control, "Q");
  for (auto& k : kids) ::waitpid(k.pid, nullptr, 0);
  return failed ? 3 : 0;
}
