// The Phoenix Channels workloads (issue 14): an Athanor web server with one channel type on
// "room:*", and real WebSocket clients speaking Phoenix's V2 JSON protocol to it over loopback TCP.
//
//   athanor-bench channel_roundtrip [--clients K] [--seconds S]
//   athanor-bench channel_broadcast [--clients C] [--seconds S] [--window W]
//   athanor-bench channel_node --node_number K ... / channel_clients --port P ...  (million.sh)
//
// Two OS processes. The clients run in a child forked before the runtime exists: a descriptor
// limit (20,000 here) could not hold both ends of 10,000 connections in one process, and the
// clients must not share the server's schedulers (their own cost still lands on the same CPUs:
// on a 2-core machine the server's schedulers and the client thread compete for them). The child
// is a single epoll loop with no Athanor in it: each client does the HTTP upgrade (Sec-WebSocket-Key,
// checked Sec-WebSocket-Accept), sends masked frames, answers pings, and joins `room:bench` with
// ["1","1","room:bench","phx_join",{}], at most kConnectingAtOnce connections being set up at a time
// so that the listen backlog never overflows. Parent and child talk in text lines over a
// socketpair; every wait on the other side has a deadline, and a failure on either side ends the
// run with a line on stderr and exit status 1.
//
// channel_roundtrip: each client, in a closed loop, pushes ["1",Ref,"room:bench","ping",{"n":Ref}]
// and waits for the phx_reply with its Ref (the channel's handle_in answers {:reply, {:ok,
// payload}}): the path socket process -> channel process -> the connection's outbox -> the
// socket. Warm-up min(1 s, S/10), then S seconds; latency is the client's, from the write of the
// push to the read of its reply.
//
// channel_broadcast: the server's main thread (not a scheduler) calls web::broadcast("room:bench",
// "tick", {"i": Seq, "t": SendNs}) with SendNs read from CLOCK_MONOTONIC just before the call. A
// delivery is timed to the frame's arrival in the client's socket, as the kernel stamps it
// (SO_TIMESTAMPNS), and also to the client thread's read(): one thread reading 10,000 sockets
// reaches the last ones late, which is the client's cost, not the server's. At most W broadcasts
// are unfinished at a time (a broadcast is finished once every client has read it: the child says
// so); W = 1 measures one fan-out on an otherwise idle server, a larger W a stream. Each client
// checks that it gets every broadcast, in order.
//
// channel_node and channel_clients are the two halves of bench/web/million.sh, the million-client
// run (see their comments at the end): a node of a cluster serving up to ~19,500 clients, and a
// process of up to ~19,500 of these clients, many of each started and driven by the script.
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "athanor/dist/node.h"
#include "athanor/web/pubsub.h"
#include "athanor/web/web.h"
#include "bench.h"

using namespace athanor;
using namespace athanor::bench;

namespace {

constexpr std::string_view kTopic = "room:bench";
constexpr long kConnectingAtOnce = 200;  // clients between connect() and their join reply
constexpr unsigned kSourceAddresses = 4;  // 127.0.0.1 .. 127.0.0.4, so ephemeral ports never run short
constexpr std::int64_t kSecond = 1'000'000'000;

// CLOCK_MONOTONIC in nanoseconds: one clock for both processes, so a delivery's latency is the
// difference of two readings taken in different processes.
std::int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * kSecond + ts.tv_nsec;
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::optional<std::int64_t> to_int(std::string_view s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  return v;
}

// Element ⌊q·N⌋ of sorted samples (as the other workloads pick percentiles), in microseconds.
double percentile_us(const std::vector<std::uint32_t>& sorted_ns, double q) {
  if (sorted_ns.empty()) return 0;
  return double(sorted_ns[std::min(sorted_ns.size() - 1, std::size_t(q * double(sorted_ns.size())))]) / 1e3;
}

std::uint32_t clamp_ns(std::int64_t ns) {
  return std::uint32_t(std::clamp<std::int64_t>(ns, 0, std::numeric_limits<std::uint32_t>::max()));
}

// ---- the line protocol between the server (parent) and the clients (child) -----------------------
//
//   parent -> child: "go PORT JOIN_TIMEOUT_MS", then "run WARMUP_NS MEASURE_NS" (roundtrip) or
//                    "end FROM TO" (broadcast: the broadcasts FROM..TO-1 were measured)
//   child -> parent: "joined N JOIN_NS", "done SEQ" (broadcast SEQ reached every client),
//                    "result JSON_FIELDS", or "error TEXT"
class control_link {
 public:
  explicit control_link(int fd) : fd_(fd) {}
  ~control_link() { ::close(fd_); }
  control_link(const control_link&) = delete;
  control_link& operator=(const control_link&) = delete;

  int fd() const noexcept { return fd_; }
  // True once the other side is gone (end of file or an error).
  bool closed() const noexcept { return closed_; }

  void send(const std::string& line) {
    const std::string data = line + "\n";
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t w = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        closed_ = true;
        throw std::runtime_error(errno_text("the other process is gone (control socket)"));
      }
      off += std::size_t(w);
    }
  }

  // The next line, waiting until `deadline` (now_ns() time; a past deadline: only what has
  // already arrived). nullopt on timeout or when the other side is gone (closed()).
  std::optional<std::string> receive(std::int64_t deadline) {
    for (;;) {
      if (const std::size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      if (closed_) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      const std::int64_t left_ms = std::max<std::int64_t>(0, (deadline - now_ns() + 999'999) / 1'000'000);
      const int r = ::poll(&p, 1, int(std::min<std::int64_t>(left_ms, 1 << 30)));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        closed_ = true;
        continue;  // hand out a last line if one is complete
      }
      buf_.append(chunk, std::size_t(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
  bool closed_ = false;
};

// ---- WebSocket and Phoenix framing, the client's side ---------------------------------------------

std::string base64(const unsigned char* p, std::size_t n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < n; i += 3) {
    const std::uint32_t v = std::uint32_t(p[i]) << 16 | (i + 1 < n ? std::uint32_t(p[i + 1]) << 8 : 0) |
                            (i + 2 < n ? std::uint32_t(p[i + 2]) : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += i + 1 < n ? kAlphabet[v >> 6 & 63] : '=';
    out += i + 2 < n ? kAlphabet[v & 63] : '=';
  }
  return out;
}

// xorshift64: masking keys and Sec-WebSocket-Key nonces need to vary, not to be secret.
struct cheap_random {
  std::uint64_t state;
  std::uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

// Appends one client frame (FIN set, masked as RFC 6455 §5.3 requires of clients).
void append_client_frame(std::string& out, std::uint8_t opcode, std::string_view payload, std::uint32_t mask) {
  out.push_back(char(0x80 | opcode));
  const std::size_t n = payload.size();
  if (n < 126) {
    out.push_back(char(0x80 | n));
  } else if (n < 65536) {
    out.push_back(char(0x80 | 126));
    out.push_back(char(n >> 8));
    out.push_back(char(n & 0xff));
  } else {
    out.push_back(char(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(char(std::uint64_t(n) >> shift & 0xff));
  }
  const unsigned char key[4] = {std::uint8_t(mask >> 24), std::uint8_t(mask >> 16), std::uint8_t(mask >> 8),
                                std::uint8_t(mask)};
  out.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < n; ++i) out.push_back(char(std::uint8_t(payload[i]) ^ key[i & 3]));
}

// One server frame at the front of `in` (servers never mask), or nullopt while it is incomplete.
struct server_frame {
  std::uint8_t opcode;
  std::string_view payload;
  std::size_t size;  // header and payload
};
std::optional<server_frame> next_server_frame(std::string_view in) {
  if (in.size() < 2) return std::nullopt;
  const auto b0 = std::uint8_t(in[0]), b1 = std::uint8_t(in[1]);
  if (b1 & 0x80) throw std::runtime_error("the server sent a masked frame");
  // No extension was negotiated (the client offers none), and these messages are far below any
  // size a server would fragment: a fragment or an RSV bit means the server is wrong.
  if ((b0 & 0x80) == 0 || (b0 & 0x70) != 0) throw std::runtime_error(fmt::format("unexpected frame header {:#04x}", b0));
  std::uint64_t len = b1 & 0x7f;
  std::size_t pos = 2;
  if (len == 126) {
    if (in.size() < 4) return std::nullopt;
    len = std::uint64_t(std::uint8_t(in[2])) << 8 | std::uint8_t(in[3]);
    pos = 4;
  } else if (len == 127) {
    if (in.size() < 10) return std::nullopt;
    len = 0;
    for (int i = 2; i < 10; ++i) len = len << 8 | std::uint8_t(in[std::size_t(i)]);
    pos = 10;
  }
  if (in.size() - pos < len) return std::nullopt;
  return server_frame{std::uint8_t(b0 & 0x0f), in.substr(pos, std::size_t(len)), pos + std::size_t(len)};
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits a V2 frame [join_ref, ref, topic, event, payload] into its five JSON texts (strings keep
// their quotes). Enough JSON to find the top level's commas: strings with escapes, nesting.
bool split_phoenix_frame(std::string_view s, std::array<std::string_view, 5>& parts) {
  s = trim(s);
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return false;
  std::size_t i = 1, count = 0;
  for (;;) {
    const std::size_t start = i;
    int depth = 0;
    bool in_string = false;
    for (; i < s.size(); ++i) {
      const char c = s[i];
      if (in_string) {
        if (c == '\\') ++i;
        else if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        ++depth;
      } else if (c == ']' || c == '}') {
        if (depth == 0) break;
        --depth;
      } else if (c == ',' && depth == 0) {
        break;
      }
    }
    if (i >= s.size() || count == parts.size()) return false;
    parts[count++] = trim(s.substr(start, i - start));
    if (s[i] == ']') return count == parts.size() && i == s.size() - 1;
    ++i;
  }
}

// The integer value of `"key":` in a flat JSON object this bench's server wrote.
std::optional<std::int64_t> int_field(std::string_view object, std::string_view key) {
  const std::string pattern = "\"" + std::string(key) + "\":";
  const std::size_t at = object.find(pattern);
  if (at == std::string_view::npos) return std::nullopt;
  return to_int(trim(object.substr(at + pattern.size())));
}

bool reply_is_ok(std::string_view payload) { return payload.find("\"status\":\"ok\"") != std::string_view::npos; }

// A client's connection ended or could not be made (refused, reset, closed by the server): fatal
// in the channel_* workloads, counted (by reason) in mode held, where a machine at its limits
// may shed connections and the run reports how many it held.
class connection_lost : public std::runtime_error {
 public:
  connection_lost(std::size_t client, std::string reason)
      : std::runtime_error(fmt::format("client {}: {}", client, reason)), reason_(std::move(reason)) {}
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

// ---- the clients (the child process) ------------------------------------------------------------

// What the clients join and where they connect from: the source addresses first_source,
// first_source + 1, ... (host byte order), client i taking number i % sources.
struct fleet_setup {
  std::string topic{kTopic};
  std::uint32_t first_source = INADDR_LOOPBACK;  // 127.0.0.1
  unsigned sources = kSourceAddresses;
};

class client_fleet {
 public:
  // held (channel_clients): the clients stay joined and record every broadcast they get, without
  // a server process to talk to (no control link); the caller waits with await_broadcast().
  enum class mode { roundtrip, broadcast, held };

  // `ctl` may be null only in mode held.
  client_fleet(control_link* ctl, std::uint16_t port, long count, mode m, fleet_setup setup = {})
      : ctl_(ctl),
        port_(port),
        mode_(m),
        setup_(std::move(setup)),
        quoted_topic_("\"" + setup_.topic + "\""),
        clients_(std::size_t(count)),
        random_{0x9e3779b97f4a7c15ull ^ std::uint64_t(::getpid())} {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error(errno_text("epoll_create1"));
    if (ctl_) {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u64 = kControlTag;
      if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, ctl_->fd(), &e) != 0) throw std::runtime_error(errno_text("epoll_ctl"));
    }
    read_buf_.resize(1 << 16);
  }
  ~client_fleet() {
    for (client& c : clients_) {
      if (c.fd >= 0) ::close(c.fd);
    }
    ::close(epoll_);
  }
  client_fleet(const client_fleet&) = delete;
  client_fleet& operator=(const client_fleet&) = delete;

  // Connects every client and joins it to the topic, at most kConnectingAtOnce at a time. Throws if
  // one fails or they are not all joined by `deadline`; in mode held, those lost are counted, and
  // at the deadline the clients not yet joined are given up on (lost: "not joined in time").
  // Returns the time it took.
  std::int64_t connect_and_join(std::int64_t deadline) {
    const std::int64_t start = now_ns();
    std::size_t next = 0;
    while (joined_ + (lost_ - lost_after_join_) < clients_.size()) {
      while (setting_up_ < kConnectingAtOnce && next < clients_.size()) open(next++);
      if (now_ns() > deadline && mode_ == mode::held) {
        for (client& c : clients_) {
          if (c.at != phase::joined && c.at != phase::lost) lose(c, "not joined in time");
        }
        break;
      }
      if (now_ns() > deadline) {
        throw std::runtime_error(fmt::format("only {} of {} clients had joined {} after {:.1f} s", joined_,
                                             clients_.size(), setup_.topic, double(now_ns() - start) / 1e9));
      }
      wait_and_dispatch(100);
    }
    return now_ns() - start;
  }

  // channel_roundtrip: each client pushes, waits for the reply, pushes again; pushes written
  // from `warmup_ns` on are measured, and no push is written after `warmup_ns + measure_ns`.
  std::string run_roundtrips(std::int64_t warmup_ns, std::int64_t measure_ns) {
    measure_from_ = now_ns() + warmup_ns;
    stop_pushing_at_ = measure_from_ + measure_ns;
    latencies_.reserve(1 << 20);
    for (client& c : clients_) push_ping(c);
    while (pending_pushes_ > 0) {
      if (now_ns() > stop_pushing_at_ + 10 * kSecond) {
        throw std::runtime_error(fmt::format("{} pushes still had no reply 10 s after the end", pending_pushes_));
      }
      wait_and_dispatch(100);
    }
    if (latencies_.empty()) throw std::runtime_error("no round trip completed in the measured time");
    const double seconds = double(last_reply_at_ - measure_from_) / 1e9;
    std::sort(latencies_.begin(), latencies_.end());
    return fmt::format(R"("roundtrips":{},"seconds":{:.2f},"roundtrips_per_sec":{:.0f},)"
                       R"("p50_us":{:.1f},"p99_us":{:.1f},"max_us":{:.1f})",
                       latencies_.size(), seconds, double(latencies_.size()) / seconds, percentile_us(latencies_, 0.5),
                       percentile_us(latencies_, 0.99), double(latencies_.back()) / 1e3);
  }

  // channel_broadcast: records every delivery and says "done SEQ" when broadcast SEQ has reached
  // every client, until the server says "end FROM TO"; then the statistics of FROM..TO-1.
  std::string serve_broadcasts() {
    for (;;) {
      if (wait_and_dispatch(100)) {
        while (std::optional<std::string> line = ctl_->receive(0)) {
          if (!line->starts_with("end ")) throw std::runtime_error("unexpected order from the server: " + *line);
          std::int64_t from = 0, to = 0;
          if (std::sscanf(line->c_str(), "end %ld %ld", &from, &to) != 2) throw std::runtime_error("bad order " + *line);
          return broadcast_statistics(std::size_t(from), std::size_t(to));
        }
        if (ctl_->closed()) throw std::runtime_error("the server process is gone");
      }
    }
  }

  // channel_clients (mode held): waits until broadcast `seq` has reached every client, answering
  // the server's pings meanwhile, and returns its JSON fields: when it was sent and when the last
  // client had it (in its socket, as the kernel stamped it, and read by this thread), and
  // histograms of the latencies in 1 ms steps (element k: how many clients had it k..k+1 ms after
  // it was sent), which a script adds up over several client processes. Throws at `deadline`.
  std::string await_broadcast(std::size_t seq, std::int64_t deadline, const volatile std::sig_atomic_t* stop = nullptr) {
    // Every client has it, or was lost before it came; or *stop is set: then the figures are
    // those of the clients that have it so far ("complete":false).
    const auto lost_before = [&] {
      std::size_t n = 0;
      for (std::size_t s = 0; s <= seq && s < lost_at_seq_.size(); ++s) n += lost_at_seq_[s];
      return n;
    };
    const auto delivered = [&] { return broadcasts_.size() > seq ? broadcasts_[seq].delivered : 0; };
    bool complete = true;
    while (delivered() + lost_before() < clients_.size()) {
      if (stop && *stop) {
        complete = false;
        break;
      }
      if (now_ns() > deadline) {
        throw std::runtime_error(fmt::format("broadcast {} had reached {} of {} clients at the deadline ({} lost)", seq,
                                             delivered(), clients_.size(), lost_before()));
      }
      wait_and_dispatch(100);
    }
    if (broadcasts_.size() <= seq) broadcasts_.resize(seq + 1);  // every client was lost
    const broadcast_record& b = broadcasts_[seq];
    const auto histogram = [](const std::vector<std::uint32_t>& us) {
      std::vector<std::size_t> count;
      for (const std::uint32_t v : us) {
        if (v / 1000 >= count.size()) count.resize(v / 1000 + 1);
        ++count[v / 1000];
      }
      return fmt::format("{}", fmt::join(count, ","));
    };
    return fmt::format(
        R"("seq":{},"complete":{},"delivered":{},"sent_ns":{},"last_in_socket_ns":{},"last_read_ns":{},"in_socket_ms":[{}],"read_ms":[{}])",
        seq, complete, b.delivered, b.sent_at, b.last_delivery_at, b.last_read_at, histogram(b.latencies),
        histogram(b.read_latencies));
  }

  // Mode held: how many clients are joined now, and the lost ones by reason, as JSON fields.
  std::string held_fields() const {
    std::string reasons;
    for (const auto& [why, n] : lost_reasons_) {
      std::string quoted;
      for (const char ch : why) {
        if (ch == '"' || ch == '\\') quoted += '\\';
        if (std::uint8_t(ch) >= 0x20) quoted += ch;
      }
      reasons += fmt::format(R"({}"{}":{})", reasons.empty() ? "" : ",", quoted, n);
    }
    return fmt::format(R"("joined":{},"lost":{},"lost_after_join":{},"lost_reasons":{{{}}})", joined_ - lost_after_join_,
                       lost_, lost_after_join_, reasons);
  }

  // Keeps the clients connected, answering pings, until `until` (a now_ns() time).
  void hold(std::int64_t until) {
    while (now_ns() < until) wait_and_dispatch(int(std::clamp<std::int64_t>((until - now_ns()) / 1'000'000, 1, 100)));
  }

 private:
  static constexpr std::uint64_t kControlTag = std::numeric_limits<std::uint64_t>::max();
  enum class phase : std::uint8_t { connecting, upgrading, joining, joined, lost };
  struct client {
    int fd = -1;
    phase at = phase::connecting;
    bool want_write = false;      // EPOLLOUT is in its interest set
    std::string key;              // Sec-WebSocket-Key, until the upgrade is checked
    std::string in;               // bytes read but not yet a whole frame
    std::string out;              // bytes the socket did not take yet
    std::int64_t expected_seq = 0;  // broadcast: the next one it must get
    std::int64_t ref = 1;           // the last push's ref (the join is "1")
    std::int64_t pushed_at = 0;     // roundtrip: when the pending push was written
  };
  // A broadcast's deliveries so far.
  struct broadcast_record {
    std::size_t delivered = 0;
    std::int64_t sent_at = 0, last_delivery_at = 0;  // now_ns() times; the delivery's in the socket
    std::int64_t last_read_at = 0;
    // In ns (in us in mode held):
    std::vector<std::uint32_t> latencies;       // send -> in the client's socket
    std::vector<std::uint32_t> read_latencies;  // send -> read by the client thread
  };
  // When a read's bytes were there: read by this thread, and in the socket (the kernel's stamp,
  // on the now_ns() clock; 0 if the kernel gave none).
  struct arrival {
    std::int64_t read, in_socket;
  };

  void open(std::size_t i) {
    client& c = clients_[i];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) throw std::runtime_error(errno_text(fmt::format("socket for client {}", i).c_str()));
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // as browsers do
    // Broadcast latency is measured to the frame's arrival in the client's socket, which the kernel
    // stamps (on loopback: when the server's send hands it to the loopback device), so that it
    // does not include the wait for this one thread to get round to the socket among 10,000.
    if (mode_ != mode::roundtrip && ::setsockopt(c.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0) {
      throw std::runtime_error(errno_text("SO_TIMESTAMPNS"));
    }
    // The source address is chosen here, the port only at connect(), from the whole 4-tuple.
    ::setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(setup_.first_source + std::uint32_t(i % setup_.sources));
    if (::bind(c.fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      throw std::runtime_error(errno_text(fmt::format("bind client {}", i).c_str()));
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port_);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS) {
      throw std::runtime_error(errno_text(fmt::format("connect client {}", i).c_str()));
    }
    epoll_event e{};
    e.events = EPOLLIN | EPOLLOUT;
    e.data.u64 = i;
    c.want_write = true;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &e) != 0) throw std::runtime_error(errno_text("epoll_ctl"));
    ++setting_up_;
  }

  // Waits up to timeout_ms for events and handles them. Returns true if the control socket has
  // something to read (or was closed).
  bool wait_and_dispatch(int timeout_ms) {
    std::array<epoll_event, 512> events;
    const int n = ::epoll_wait(epoll_, events.data(), int(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return false;
      throw std::runtime_error(errno_text("epoll_wait"));
    }
    if (mode_ != mode::roundtrip) {  // read again now and then: NTP may slew the real-time clock
      timespec real;
      ::clock_gettime(CLOCK_REALTIME, &real);
      realtime_minus_monotonic_ = std::int64_t(real.tv_sec) * kSecond + real.tv_nsec - now_ns();
    }
    bool control = false;
    for (int k = 0; k < n; ++k) {
      if (events[std::size_t(k)].data.u64 == kControlTag) {
        control = true;
        continue;
      }
      const std::size_t i = std::size_t(events[std::size_t(k)].data.u64);
      client& c = clients_[i];
      if (c.at == phase::lost) continue;  // lost earlier in this batch
      try {
        handle(c, i, events[std::size_t(k)].events);
      } catch (const connection_lost& e) {
        if (mode_ != mode::held) throw;
        lose(c, e.reason());
      }
    }
    return control;
  }

  void handle(client& c, std::size_t i, std::uint32_t ev) {
    if (c.at == phase::connecting) {
      if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) throw connection_lost(i, fmt::format("connect: {}", std::strerror(err)));
      start_upgrade(c);
      return;
    }
    if (ev & EPOLLOUT) flush(c, i);
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_from(c, i);
  }

  // Mode held: the client's connection is gone (or given up on); it counts as lost, by reason.
  void lose(client& c, const std::string& reason) {
    if (c.at == phase::joined) ++lost_after_join_;
    else if (c.fd >= 0) --setting_up_;
    if (c.fd >= 0) ::close(c.fd);  // which also takes it out of the epoll set
    c.fd = -1;
    c.at = phase::lost;
    std::string().swap(c.in);
    std::string().swap(c.out);
    std::string().swap(c.key);
    ++lost_;
    ++lost_reasons_[reason];
    if (c.expected_seq >= std::int64_t(lost_at_seq_.size())) lost_at_seq_.resize(std::size_t(c.expected_seq) + 1);
    ++lost_at_seq_[std::size_t(c.expected_seq)];
  }

  void start_upgrade(client& c) {
    unsigned char nonce[16];
    for (int k = 0; k < 16; k += 8) {
      const std::uint64_t r = random_.next();
      std::memcpy(nonce + k, &r, 8);
    }
    c.key = base64(nonce, sizeof nonce);
    c.at = phase::upgrading;
    c.out += fmt::format(
        "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        port_, c.key);
    flush(c, std::size_t(&c - clients_.data()));
  }

  void send_frame(client& c, std::uint8_t opcode, std::string_view payload) {
    append_client_frame(c.out, opcode, payload, std::uint32_t(random_.next()));
    flush(c, std::size_t(&c - clients_.data()));
  }

  // Writes what the socket takes; the rest waits for EPOLLOUT.
  void flush(client& c, std::size_t i) {
    while (!c.out.empty()) {
      const ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (w <= 0) throw connection_lost(i, fmt::format("write: {}", std::strerror(errno)));
      c.out.erase(0, std::size_t(w));
    }
    const bool want = !c.out.empty();
    if (want != c.want_write) {
      epoll_event e{};
      e.events = EPOLLIN | (want ? EPOLLOUT : 0u);
      e.data.u64 = i;
      if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &e) != 0) throw std::runtime_error(errno_text("epoll_ctl"));
      c.want_write = want;
    }
  }

  void read_from(client& c, std::size_t i) {
    iovec iov{read_buf_.data(), read_buf_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(c.fd, &msg, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n < 0) throw connection_lost(i, fmt::format("read: {}", std::strerror(errno)));
    if (n == 0) {
      throw connection_lost(i, "the server closed the connection without a close frame");
    }
    arrival at{now_ns(), 0};  // every frame of this read was here by now
    // The kernel's stamp is the last segment's this read took (CLOCK_REALTIME): earlier frames
    // read together get the later time.
    for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h)) {
      if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(h), sizeof ts);
        at.in_socket = std::int64_t(ts.tv_sec) * kSecond + ts.tv_nsec - realtime_minus_monotonic_;
      }
    }
    std::string_view data(read_buf_.data(), std::size_t(n));
    if (!c.in.empty()) {
      c.in.append(data);
      data = c.in;
    }
    const std::size_t used = consume(c, i, data, at);
    if (!c.in.empty()) c.in.erase(0, used);
    else c.in.assign(data.substr(used));
  }

  // Handles what `data` holds: the upgrade response, then whole frames. Returns the bytes used.
  std::size_t consume(client& c, std::size_t i, std::string_view data, const arrival& at) {
    std::size_t pos = 0;
    if (c.at == phase::upgrading) {
      const std::size_t end = data.find("\r\n\r\n");
      if (end == std::string_view::npos) {
        if (data.size() > 8192) throw std::runtime_error(fmt::format("client {}: no end to the upgrade response", i));
        return 0;
      }
      check_upgrade(c, i, data.substr(0, end + 2));
      pos = end + 4;
      c.at = phase::joining;
      send_frame(c, 1, "[\"1\",\"1\"," + quoted_topic_ + ",\"phx_join\",{}]");
    }
    while (std::optional<server_frame> f = next_server_frame(data.substr(pos))) {
      pos += f->size;
      switch (f->opcode) {
        case 1: on_text(c, i, f->payload, at); break;
        case 9: send_frame(c, 10, f->payload); break;  // ping: pong with its payload
        case 10: break;
        case 8: {
          const unsigned code =
              f->payload.size() >= 2 ? unsigned(std::uint8_t(f->payload[0])) << 8 | std::uint8_t(f->payload[1]) : 1005;
          throw connection_lost(i, fmt::format("the server closed the WebSocket: {} {}", code,
                                               f->payload.size() > 2 ? f->payload.substr(2) : std::string_view()));
        }
        default: throw std::runtime_error(fmt::format("client {}: unexpected frame, opcode {}", i, f->opcode));
      }
    }
    return pos;
  }

  void check_upgrade(client& c, std::size_t i, std::string_view head) {
    if (!head.starts_with("HTTP/1.1 101 ")) {
      throw connection_lost(i, fmt::format("upgrade refused: {}", head.substr(0, head.find('\r'))));
    }
    std::string lower(head);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
    const std::string_view name = "\r\nsec-websocket-accept:";
    const std::size_t at = lower.find(name);
    if (at == std::string::npos) throw std::runtime_error(fmt::format("client {}: the 101 has no Sec-WebSocket-Accept", i));
    const std::size_t from = at + name.size();
    const std::string_view accept = trim(head.substr(from, head.find("\r\n", from) - from));
    if (accept != web::ws_accept_key(c.key)) {
      throw std::runtime_error(fmt::format("client {}: wrong Sec-WebSocket-Accept", i));
    }
    c.key.clear();
  }

  void on_text(client& c, std::size_t i, std::string_view text, const arrival& at) {
    std::array<std::string_view, 5> f;  // join_ref, ref, topic, event, payload
    if (!split_phoenix_frame(text, f) || f[2] != quoted_topic_) {
      throw std::runtime_error(fmt::format("client {}: unexpected message {}", i, text.substr(0, 200)));
    }
    if (c.at == phase::joining) {
      if (f[0] != "\"1\"" || f[1] != "\"1\"" || f[3] != "\"phx_reply\"" || !reply_is_ok(f[4])) {
        throw std::runtime_error(fmt::format("client {}: the join was not answered ok: {}", i, text.substr(0, 200)));
      }
      c.at = phase::joined;
      --setting_up_;
      ++joined_;
      return;
    }
    if (mode_ != mode::roundtrip && f[0] == "null" && f[1] == "null" && f[3] == "\"tick\"") {
      on_tick(c, i, f[4], at);
      return;
    }
    if (mode_ == mode::roundtrip && f[3] == "\"phx_reply\"" && c.pushed_at != 0 && f[1].size() > 2 &&
        f[1].front() == '"' && to_int(f[1].substr(1, f[1].size() - 2)) == c.ref) {
      if (!reply_is_ok(f[4])) throw std::runtime_error(fmt::format("client {}: push refused: {}", i, text.substr(0, 200)));
      if (c.pushed_at >= measure_from_) {
        latencies_.push_back(clamp_ns(at.read - c.pushed_at));
        last_reply_at_ = at.read;
      }
      c.pushed_at = 0;
      --pending_pushes_;
      if (now_ns() < stop_pushing_at_) push_ping(c);
      return;
    }
    throw std::runtime_error(fmt::format("client {}: unexpected message {}", i, text.substr(0, 200)));
  }

  void push_ping(client& c) {
    ++c.ref;
    c.pushed_at = now_ns();
    ++pending_pushes_;
    send_frame(c, 1, fmt::format(R"(["1","{}",{},"ping",{{"n":{}}}])", c.ref, quoted_topic_, c.ref));
  }

  void on_tick(client& c, std::size_t i, std::string_view payload, const arrival& at) {
    const std::optional<std::int64_t> seq = int_field(payload, "i"), sent = int_field(payload, "t");
    if (!seq || !sent) throw std::runtime_error(fmt::format("client {}: a broadcast without i and t: {}", i, payload));
    if (at.in_socket == 0) throw std::runtime_error(fmt::format("client {}: a read without the kernel's timestamp", i));
    if (*seq != c.expected_seq) {
      throw std::runtime_error(
          fmt::format("client {}: got broadcast {} when {} was due (lost or reordered)", i, *seq, c.expected_seq));
    }
    ++c.expected_seq;
    if (std::size_t(*seq) >= broadcasts_.size()) broadcasts_.resize(std::size_t(*seq) + 1);
    broadcast_record& b = broadcasts_[std::size_t(*seq)];
    if (b.latencies.empty()) {
      b.latencies.reserve(clients_.size());
      b.read_latencies.reserve(clients_.size());
    }
    if (mode_ == mode::held) {  // a fan-out to a million clients may take longer than a uint32 of ns
      b.latencies.push_back(clamp_ns((at.in_socket - *sent) / 1000));
      b.read_latencies.push_back(clamp_ns((at.read - *sent) / 1000));
    } else {
      b.latencies.push_back(clamp_ns(at.in_socket - *sent));
      b.read_latencies.push_back(clamp_ns(at.read - *sent));
    }
    b.sent_at = *sent;
    b.last_delivery_at = std::max(b.last_delivery_at, at.in_socket);
    b.last_read_at = std::max(b.last_read_at, at.read);
    if (++b.delivered == clients_.size() && ctl_) ctl_->send(fmt::format("done {}", *seq));
  }

  std::string broadcast_statistics(std::size_t from, std::size_t to) {
    if (from >= to || to > broadcasts_.size()) {
      throw std::runtime_error(fmt::format("asked about broadcasts {}..{}, saw {}", from, to, broadcasts_.size()));
    }
    std::vector<std::uint32_t> all, read, to_last;
    all.reserve((to - from) * clients_.size());
    read.reserve((to - from) * clients_.size());
    for (std::size_t s = from; s < to; ++s) {
      const broadcast_record& b = broadcasts_[s];
      if (b.delivered != clients_.size()) throw std::runtime_error(fmt::format("broadcast {} is not finished", s));
      all.insert(all.end(), b.latencies.begin(), b.latencies.end());
      read.insert(read.end(), b.read_latencies.begin(), b.read_latencies.end());
      to_last.push_back(clamp_ns(b.last_delivery_at - b.sent_at));
    }
    std::sort(all.begin(), all.end());
    std::sort(read.begin(), read.end());
    std::sort(to_last.begin(), to_last.end());
    const double seconds = double(broadcasts_[to - 1].last_delivery_at - broadcasts_[from].sent_at) / 1e9;
    return fmt::format(
        R"("broadcasts":{},"deliveries":{},"seconds":{:.2f},"deliveries_per_sec":{:.0f},"p50_us":{:.1f},"p99_us":{:.1f},)"
        R"("max_us":{:.1f},"last_delivery_ms_p50":{:.2f},"last_delivery_ms_max":{:.2f},"read_p50_us":{:.1f},)"
        R"("read_p99_us":{:.1f},"read_max_us":{:.1f})",
        to - from, all.size(), seconds, double(all.size()) / seconds, percentile_us(all, 0.5), percentile_us(all, 0.99),
        double(all.back()) / 1e3, percentile_us(to_last, 0.5) / 1e3, double(to_last.back()) / 1e6,
        percentile_us(read, 0.5), percentile_us(read, 0.99), double(read.back()) / 1e3);
  }

  control_link* ctl_;
  std::uint16_t port_;
  mode mode_;
  fleet_setup setup_;
  std::string quoted_topic_;  // the topic as a JSON string
  std::vector<client> clients_;
  cheap_random random_;
  int epoll_ = -1;
  std::vector<char> read_buf_;
  std::size_t setting_up_ = 0, joined_ = 0;
  // mode held: clients whose connection ended or was given up on (lost_after_join_ of them had
  // joined), by reason; lost_at_seq_[s]: lost while broadcast s was the next one due.
  std::size_t lost_ = 0, lost_after_join_ = 0;
  std::map<std::string, std::size_t> lost_reasons_;
  std::vector<std::size_t> lost_at_seq_;
  // roundtrip
  std::int64_t measure_from_ = 0, stop_pushing_at_ = 0, last_reply_at_ = 0;
  std::size_t pending_pushes_ = 0;
  std::vector<std::uint32_t> latencies_;
  // broadcast
  std::vector<broadcast_record> broadcasts_;
  std::int64_t realtime_minus_monotonic_ = 0;  // converts the kernel's stamps to now_ns() time
};

// The child's whole life: waits for "go", connects and joins, runs, reports; its exit closes
// every connection.
[[noreturn]] void run_clients(int fd, pid_t server, long count, client_fleet::mode m) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the server, however it ends
  if (::getppid() != server) ::_exit(1);
  control_link ctl(fd);
  try {
    // The server starts its runtime and listens first: generous, but bounded.
    const std::optional<std::string> go = ctl.receive(now_ns() + 120 * kSecond);
    unsigned port = 0;
    long join_timeout_ms = 0;
    if (!go || std::sscanf(go->c_str(), "go %u %ld", &port, &join_timeout_ms) != 2) ::_exit(1);
    client_fleet fleet(&ctl, std::uint16_t(port), count, m);
    const std::int64_t join_ns = fleet.connect_and_join(now_ns() + join_timeout_ms * 1'000'000);
    ctl.send(fmt::format("joined {} {}", count, join_ns));
    std::string result;
    if (m == client_fleet::mode::roundtrip) {
      const std::optional<std::string> run = ctl.receive(now_ns() + 60 * kSecond);
      std::int64_t warmup = 0, measure = 0;
      if (!run || std::sscanf(run->c_str(), "run %ld %ld", &warmup, &measure) != 2) ::_exit(1);
      result = fleet.run_roundtrips(warmup, measure);
    } else {
      result = fleet.serve_broadcasts();
    }
    ctl.send("result " + result);
  } catch (const std::exception& e) {
    try {
      ctl.send(std::string("error ") + e.what());
    } catch (...) {
    }
    ::_exit(1);
  }
  ::_exit(0);
}

// ---- the server (the parent process) ------------------------------------------------------------

// room:* — joins are accepted; "ping" is answered with its own payload.
struct bench_room : web::channel<bench_room> {
  web::join_reply join(std::string_view, const term&, web::socket&) { return web::join_reply::ok(); }
  web::in_reply handle_in(std::string_view event, const term& payload, web::socket&) {
    if (event == "ping") return web::in_reply::ok(payload);
    return web::in_reply::reply("error", map({{term("reason"), term("unknown event")}}));
  }
};

// The client process, from fork to reaping.
class client_process {
 public:
  // Forks the clients; the caller must not have started any thread yet (the runtime included).
  client_process(long count, client_fleet::mode m) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error(errno_text("socketpair"));
    const pid_t server = ::getpid();
    std::fflush(nullptr);  // or the child's exit could write our buffered output twice
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(errno_text("fork"));
    if (pid_ == 0) {
      ::close(fds[0]);
      run_clients(fds[1], server, count, m);
    }
    ::close(fds[1]);
    ctl_.emplace(fds[0]);
  }
  ~client_process() { end(0); }

  control_link& ctl() { return *ctl_; }
  pid_t pid() const noexcept { return pid_; }

  // The next line from the clients; throws if it is theirs "error ...", or if none comes by the
  // deadline (`waiting_for` says what for).
  std::string expect(std::int64_t deadline, const std::string& waiting_for) {
    std::optional<std::string> line = ctl_->receive(deadline);
    if (!line) {
      throw std::runtime_error(ctl_->closed() ? "the client process ended while waiting for " + waiting_for
                                              : "timed out waiting for " + waiting_for);
    }
    if (line->starts_with("error ")) throw std::runtime_error("clients: " + line->substr(6));
    return *line;
  }

  // Waits up to `grace_ns` for the child to exit (it does after its result), then kills it.
  void end(std::int64_t grace_ns) {
    if (pid_ <= 0) return;
    const std::int64_t deadline = now_ns() + grace_ns;
    while (!ctl_->closed() && now_ns() < deadline) (void)ctl_->receive(deadline);
    if (!ctl_->closed()) ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  std::optional<control_link> ctl_;
};

// CPU time (user + system) process `pid` has used so far, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: count fields from the last ')'.
  const std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 1));
  std::string skip;
  for (int field = 3; field < 14; ++field) rest >> skip;
  double user = 0, system = 0;
  rest >> user >> system;
  return (user + system) / double(::sysconf(_SC_CLK_TCK));
}

// The CPU the server (this process) and the clients used over the measured part of a run, in
// cores (1.5: one and a half CPUs busy on average): on a 2-core machine the two sides share the
// CPUs, and these say which side was short of them.
class cpu_meter {
 public:
  explicit cpu_meter(pid_t clients) : clients_(clients) {}
  void start() {
    wall_ = now_ns();
    server_ = cpu_seconds(::getpid());
    client_ = cpu_seconds(clients_);
  }
  void stop() {
    const double seconds = double(now_ns() - wall_) / 1e9;
    server_ = (cpu_seconds(::getpid()) - server_) / seconds;
    client_ = (cpu_seconds(clients_) - client_) / seconds;
  }
  std::string fields() const {
    return fmt::format(R"("server_cpu_cores":{:.2f},"client_cpu_cores":{:.2f})", server_, client_);
  }

 private:
  pid_t clients_;
  std::int64_t wall_ = 0;
  double server_ = 0, client_ = 0;
};

// Each side holds one descriptor per client, plus a few: the soft limit is raised to the hard one.
void make_room_for(long clients) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  const rlim_t needed = rlim_t(clients) + 256;
  if (r.rlim_max != RLIM_INFINITY && r.rlim_max < needed) {
    throw std::runtime_error(fmt::format("{} clients need {} open files in each process; the hard limit is {}",
                                         clients, needed, r.rlim_max));
  }
}

// Runs one channel workload: forks the clients, starts the runtime and the server, has the clients
// join, then `body(clients, count, meter)` returns the workload's JSON fields, having started and
// stopped `meter` around its measured part. Prints the line, or a line on stderr and exits 1.
template <class Body>
void run_channel_bench(const options& o, const char* bench, long default_clients, client_fleet::mode m, Body body) {
  const long clients = o.get("clients", default_clients);
  std::string error, fields;
  try {
    make_room_for(clients);
    client_process kids(clients, m);
    {
      runtime rt(config_for(o));
      web::endpoint ep;
      ep.socket("/socket").channel<bench_room>("room:*");
      web::router r;
      ep.mount(r);
      web::server_config sc;
      sc.port = 0;
      sc.host = "127.0.0.1";
      sc.backlog = 4096;
      sc.max_connections = std::size_t(clients) + 64;
      web::server srv = web::listen(sc, std::move(r));
      try {
        const long rss_before = rss_bytes();
        // Setting up a connection takes the server well under a millisecond; the rest is slack
        // for a slow minute of the VM.
        const long join_timeout_ms = 10'000 + 2 * clients;
        kids.ctl().send(fmt::format("go {} {}", srv.port(), join_timeout_ms));
        const std::string joined =
            kids.expect(now_ns() + (join_timeout_ms + 10'000) * 1'000'000, "the clients to join");
        long n = 0;
        std::int64_t join_ns = 0;
        if (std::sscanf(joined.c_str(), "joined %ld %ld", &n, &join_ns) != 2 || n != clients) {
          throw std::runtime_error("unexpected answer from the clients: " + joined);
        }
        const long rss_after = rss_bytes();
        fields = fmt::format(
            R"({{"bench":"{}","system":"athanor","schedulers":{},"clients":{},)", bench, effective_schedulers(rt), clients);
        cpu_meter meter(kids.pid());
        fields += body(kids, clients, meter);
        fields += "," + meter.fields();
        fields += fmt::format(
            R"(,"join_s":{:.2f},"joins_per_sec":{:.0f},"server_rss_bytes":{},"rss_bytes_per_client":{:.0f}}})",
            double(join_ns) / 1e9, double(clients) / (double(join_ns) / 1e9), rss_after,
            double(rss_after - rss_before) / double(clients));
        kids.end(10 * kSecond);  // its exit closes every connection
      } catch (...) {
        kids.end(0);
        srv.stop(std::chrono::milliseconds(0));
        throw;
      }
      srv.stop(std::chrono::seconds(2));
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    std::fprintf(stderr, "%s: %s\n", bench, error.c_str());
    std::exit(1);
  }
  print_line(fields);
}

// Warm-up and measured time, as the dist workloads: min(1 s, S/10), then S.
std::pair<std::int64_t, std::int64_t> warmup_and_measure(const options& o) {
  const std::int64_t measure = o.get("seconds", 3) * kSecond;
  return {std::min(kSecond, measure / 10), measure};
}

void channel_roundtrip(const options& o) {
  const auto [warmup, measure] = warmup_and_measure(o);
  const auto body = [&](client_process& kids, long, cpu_meter& meter) {
    kids.ctl().send(fmt::format("run {} {}", warmup, measure));
    meter.start();  // with the warm-up: the clients time the phases themselves
    const std::string result = kids.expect(now_ns() + warmup + measure + 30 * kSecond, "the round trips' result");
    meter.stop();
    if (!result.starts_with("result ")) throw std::runtime_error("unexpected answer from the clients: " + result);
    return result.substr(7);
  };
  run_channel_bench(o, "channel_roundtrip", 1, client_fleet::mode::roundtrip, body);
}

void channel_broadcast(const options& o) {
  const auto [warmup, measure] = warmup_and_measure(o);
  const long window = o.get("window", 1);
  const auto body = [&](client_process& kids, long clients, cpu_meter& meter) {
    std::int64_t sent = 0, done = 0, measured_from = 0;
    std::vector<std::uint32_t> call_ns;  // how long each web::broadcast call took (measured ones)
    // A broadcast that has not reached every client within this long is a failure, not a slow run.
    constexpr std::int64_t kStall = 30 * kSecond;
    for (int measuring = 0; measuring < 2; ++measuring) {
      const std::int64_t until = now_ns() + (measuring ? measure : warmup);
      measured_from = sent;
      if (measuring) meter.start();
      for (;;) {
        while (sent - done < window && now_ns() < until) {
          const std::int64_t t = now_ns();
          const std::size_t reached =
              web::broadcast(kTopic, "tick", map({{term("i"), term(sent)}, {term("t"), term(t)}}));
          if (measuring) call_ns.push_back(clamp_ns(now_ns() - t));
          if (reached != std::size_t(clients)) {
            throw std::runtime_error(fmt::format("broadcast {} was queued for {} of {} clients", sent, reached, clients));
          }
          ++sent;
        }
        if (done == sent && now_ns() >= until) break;
        const std::string line = kids.expect(now_ns() + kStall, fmt::format("broadcast {} to reach every client", done));
        std::int64_t seq = -1;
        if (std::sscanf(line.c_str(), "done %ld", &seq) != 1 || seq != done) {
          throw std::runtime_error(fmt::format("expected 'done {}' from the clients, got '{}'", done, line));
        }
        ++done;
      }
    }
    meter.stop();
    kids.ctl().send(fmt::format("end {} {}", measured_from, sent));
    const std::string result = kids.expect(now_ns() + 60 * kSecond, "the broadcasts' statistics");
    if (!result.starts_with("result ")) throw std::runtime_error("unexpected answer from the clients: " + result);
    std::sort(call_ns.begin(), call_ns.end());
    return fmt::format(R"("window":{},{},"broadcast_call_us_p50":{:.1f},"broadcast_call_us_max":{:.1f})", window,
                       result.substr(7), percentile_us(call_ns, 0.5), call_ns.empty() ? 0.0 : double(call_ns.back()) / 1e3);
  };
  run_channel_bench(o, "channel_broadcast", 10000, client_fleet::mode::broadcast, body);
}

// ---- the million-client run (bench/web/million.sh): one node of a cluster, and a client process -----
//
// The script starts the cluster's nodes (channel_node), then one client process (channel_clients)
// per node, and drives them with signals; every line either prints is one JSON object.

constexpr std::string_view kMillionTopic = "room:million";

std::string node_name_of(long index) { return fmt::format("athanor_million{}", index); }

void print_json(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// athanor-bench channel_node --node_number K [--nodes N] [--port P] [--clients C] --schedulers 1
//
// A distribution node (athanor_million<K>@<host>, listening on 127.0.0.1; cookie and EPMD as any
// node: $HOME/.erlang.cookie, ERL_EPMD_PORT) running the cluster relay (web::pubsub), with an
// endpoint whose room:* channel accepts every join (no Presence), served on 127.0.0.1:P for up to
// C clients. Node K > 0 connects to node 0, the hub, so a broadcast made on the hub goes once to
// each other node. Lines on stdout:
//   {"event":"ready","node":..,"port":..}  serving, and (K > 0) connected to the hub
//   {"event":"cluster","peers":N-1}         node 0 only: every other node's relay is known
// Signals: SIGUSR1 broadcasts ("tick" {"i": Seq, "t": CLOCK_MONOTONIC ns}) on room:million from
// this node and prints {"event":"broadcast",..}; SIGUSR2 prints {"event":"stats",..}
// (connections, processes, RSS); SIGTERM/SIGINT end the node at once (no graceful close: the
// kernel closes the connections). It also ends with its parent (the script).
void channel_node(const options& o) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  const long index = o.get("node_number", 0), nodes = o.get("nodes", 1), clients = o.get("clients", 19000);
  const long port = o.get("port", 0);
  try {
    make_room_for(clients);
    sigset_t sigs;
    sigemptyset(&sigs);
    for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2}) sigaddset(&sigs, sig);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);  // before any thread starts: all inherit it

    runtime rt(config_for(o));
    dist::node_config cfg;
    cfg.name = node_name_of(index);
    cfg.listen_host = "127.0.0.1";
    dist::node node = dist::start(cfg);
    web::pubsub::start_cluster();
    const atom hub(node_name_of(0) + "@" + std::string(node.full_name().host()));
    if (index > 0) {
      spawn([hub](process& self) -> proc {  // the hub may still be starting: a minute of attempts
        for (int attempt = 0; attempt < 60; ++attempt) {
          if (co_await dist::connect_node(hub)) co_return;
          co_await self.sleep(std::chrono::seconds(1));
        }
      });
    }
    web::endpoint ep;
    ep.socket("/socket").longpoll(false).channel<bench_room>("room:*");
    web::router r;
    ep.mount(r);
    web::server_config sc;
    sc.port = std::uint16_t(port);
    sc.host = "127.0.0.1";
    sc.backlog = 4096;
    sc.max_connections = std::size_t(clients) + 64;
    web::server srv = web::listen(sc, std::move(r));
    const auto knows_hub = [&] {
      const std::vector<atom> peers = web::pubsub::peers();
      return std::find(peers.begin(), peers.end(), hub) != peers.end();
    };
    for (const std::int64_t until = now_ns() + 70 * kSecond; index > 0 && !knows_hub();) {
      if (now_ns() > until) throw std::runtime_error("the hub's relay is still unknown after 70 s: " + std::string(hub.name()));
      ::usleep(20'000);
    }
    print_json(fmt::format(R"({{"bench":"channel_node","event":"ready","node":"{}","port":{},"pid":{},"rss_bytes":{}}})",
                           node.full_name().full(), srv.port(), ::getpid(), rss_bytes()));
    bool announced = index > 0 || nodes <= 1;
    std::int64_t seq = 0;
    for (;;) {
      // Until node 0 has announced the cluster it looks every 50 ms; then it sleeps until a signal
      // (an idle node should cost nothing: 52 of them share two cores).
      const timespec tick{0, 50'000'000};
      const int sig = announced ? ::sigwaitinfo(&sigs, nullptr) : ::sigtimedwait(&sigs, nullptr, &tick);
      const std::size_t peers = web::pubsub::peers().size();
      if (!announced && long(peers) >= nodes - 1) {
        print_json(fmt::format(R"({{"bench":"channel_node","event":"cluster","peers":{}}})", peers));
        announced = true;
      }
      if (sig == SIGUSR1) {
        const std::int64_t t = now_ns();
        const std::size_t reached =
            web::broadcast(kMillionTopic, "tick", map({{term("i"), term(seq)}, {term("t"), term(t)}}));
        const std::int64_t call = now_ns() - t;
        print_json(fmt::format(
            R"({{"bench":"channel_node","event":"broadcast","seq":{},"sent_ns":{},"local_clients":{},"call_us":{:.1f},"peers":{}}})",
            seq++, t, reached, double(call) / 1e3, peers));
      } else if (sig == SIGUSR2) {
        // heap_bytes: what malloc has handed out and not yet had back (all arenas, mmapped blocks
        // included); processes_bytes: the runtime's own count of process blocks, frames, messages.
        const struct mallinfo2 heap = ::mallinfo2();
        const system_info_t info = system_info();
        print_json(fmt::format(
            R"({{"bench":"channel_node","event":"stats","connections":{},"refused":{},"slow_clients_cut":{},"processes":{},)"
            R"("rss_bytes":{},"heap_bytes":{},"processes_bytes":{},"peers":{}}})",
            srv.connections(), srv.refused(), srv.slow_clients_cut(), info.process_count, rss_bytes(),
            heap.uordblks + heap.hblkhd, info.memory_processes_bytes, peers));
      } else if (sig == SIGTERM || sig == SIGINT) {
        std::_Exit(0);  // ~20,000 graceful WebSocket closes would only slow the script's cleanup
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "channel_node %ld: %s\n", index, e.what());
    std::_Exit(1);
  }
}

// athanor-bench channel_clients --port P --clients C [--source K] [--broadcasts B] [--seconds S]
//                               [--join_seconds J]
//
// C WebSocket clients (the epoll client above, in this process alone) connect to a channel_node
// on 127.0.0.1:P from 127.<1+K/256>.<K%256>.1-8 and join room:million; then they wait for B
// broadcasts and stay connected (answering the server's pings) until S seconds after the start
// (default 600), or until killed; the process ends with its parent too. A connection that ends
// or cannot be made (refused, reset, closed by the server: on a machine at its limits the server
// may close idle-timed-out ones) counts as lost, by reason, and so does a client not joined J
// seconds after the start (default S). Lines on stdout:
//   {"event":"joined","clients":C,"joined":..,"lost":..,"lost_reasons":{..},"join_s":..}
//   {"event":"broadcast","seq":..,"delivered":..,"sent_ns":..,"last_in_socket_ns":..,..,"joined":..}
// (each broadcast: once every client has it or was lost; or at once on SIGUSR1, with what it has
// so far and "complete":false). A protocol error (a refused join, a wrong frame, a lost or
// reordered broadcast) or a broadcast still unfinished at S is one line on stderr, exit status 1.
volatile std::sig_atomic_t g_report_now = 0;  // channel_clients: SIGUSR1 came

void channel_clients(const options& o) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  struct sigaction report_now {};
  report_now.sa_handler = [](int) { g_report_now = 1; };  // epoll_wait returns EINTR; the loop looks
  ::sigaction(SIGUSR1, &report_now, nullptr);
  const long port = o.get("port", 0), clients = o.get("clients", 10000), source = o.get("source", 0);
  const long broadcasts = o.get("broadcasts", 1);
  const std::int64_t start = now_ns(), end = start + o.get("seconds", 600) * kSecond;
  const std::int64_t join_end = std::min(end, start + o.get("join_seconds", 86400) * kSecond);
  try {
    if (port <= 0) throw std::runtime_error("--port: the channel_node's port is needed");
    make_room_for(clients);
    fleet_setup setup;
    setup.topic = kMillionTopic;
    setup.first_source = 127u << 24 | std::uint32_t(1 + source / 256) << 16 | std::uint32_t(source % 256) << 8 | 1u;
    setup.sources = 8;
    client_fleet fleet(nullptr, std::uint16_t(port), clients, client_fleet::mode::held, std::move(setup));
    const std::int64_t join_ns = fleet.connect_and_join(join_end);
    print_json(fmt::format(R"({{"bench":"channel_clients","event":"joined","clients":{},{},"join_s":{:.2f},"rss_bytes":{}}})",
                           clients, fleet.held_fields(), double(join_ns) / 1e9, rss_bytes()));
    for (long seq = 0; seq < broadcasts; ++seq) {
      const std::string fields = fleet.await_broadcast(std::size_t(seq), end, &g_report_now);
      print_json(fmt::format(R"({{"bench":"channel_clients","event":"broadcast",{},{}}})", fields, fleet.held_fields()));
    }
    fleet.hold(end);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "channel_clients (port %ld): %s\n", port, e.what());
    std::_Exit(1);
  }
  std::_Exit(0);
}

}  // namespace

ATHANOR_BENCH_WORKLOAD("channel_roundtrip", channel_roundtrip);
ATHANOR_BENCH_WORKLOAD("channel_broadcast", channel_broadcast);
ATHANOR_BENCH_WORKLOAD("channel_node", channel_node);
ATHANOR_BENCH_WORKLOAD("channel_clients", channel_clients);
