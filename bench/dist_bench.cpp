// The distribution workloads: two nodes over loopback (athanor::dist), each its own OS process.
//
//   athanor-bench dist_ping_pong [--seconds S]                 round trips/s and their latency
//   athanor-bench dist_throughput --size BYTES [--seconds S] [--window W]    messages/s, MB/s
//   athanor-bench dist_peer [--seconds S]                      the other node (see below)
//   athanor-bench tcp_throughput --size BYTES [--seconds S]    raw loopback TCP: the yardstick
//
// The driver (dist_ping_pong, dist_throughput) is one node; the peer is another OS process with
// two registered processes: athanor_bench_echo and athanor_bench_sink. Unless ATHANOR_BENCH_PEER
// names a running peer node (an Erlang one: bench/erlang/dist_bench.erl, or `athanor-bench
// dist_peer`), the driver starts its own peer, `athanor-bench dist_peer` with the same
// --schedulers, and ends it (SIGTERM) when done. Names are short names on `localhost`
// (name@localhost: loopback only), the cookie is ATHANOR_COOKIE or "athanor-bench" (never
// ~/.erlang.cookie), EPMD is the one at ERL_EPMD_PORT on 127.0.0.1 or, when that variable is
// unset, a private one on a free port that the driver's node embeds (never 4369 by default).
//
// The protocol is the same for both systems' peers (bench/erlang/dist_bench.erl is the Erlang
// twin of everything here):
//   echo: {hello, From} -> From ! {echo, self(), System};  {From, Msg} -> From ! Msg;
//         {info, From} -> From ! {info, System, Schedulers, ReliefThreads}
//   sink: {hello, From} -> From ! {sink, self(), System};  {start, From, K}: count from 0 and
//         ack every K binaries with From ! {ack, Count};  Bin -> count it;
//         {stop, From} -> From ! {done, Count}
// ping_pong: one process sends {self(), N} to the echo's pid and waits for N, for --seconds
// (after a warm-up of a tenth of it); it reports round trips/s and the latency percentiles.
// throughput: one process streams one --size-byte binary (a shared refc binary, as Erlang's) to
// the sink's pid, keeping at most --window messages unacknowledged (the sink acks every
// window/8), for --seconds; the clock stops when the sink has answered `stop`, so every message
// counted was delivered to the sink's mailbox and received. The default window holds 8 MB
// (at most 8000 messages): enough that the flow control never starves the connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "athanor/dist/epmd.h"
#include "athanor/dist/node.h"
#include "bench.h"

extern char** environ;

using namespace athanor;
using namespace athanor::bench;
using namespace std::chrono_literals;

namespace {

constexpr const char* kEchoName = "athanor_bench_echo";
constexpr const char* kSinkName = "athanor_bench_sink";
constexpr const char* kDefaultCookie = "athanor-bench";

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// A TCP port on 127.0.0.1 that was free a moment ago.
std::uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string self_exe() {
  std::vector<char> buf(4096);
  ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buf.data(), std::size_t(n));
}

double seconds_of(const options& o, double fallback) { return double(o.get("seconds", long(fallback))); }

// ---- the peer's processes (both the driver's peer child and `athanor-bench dist_peer`) -----------

std::atomic<long> g_echoed{0}, g_sunk{0};

struct atoms {
  atom hello{"hello"}, echo{"echo"}, sink{"sink"}, info{"info"}, start{"start"}, stop{"stop"}, ack{"ack"},
      done{"done"};
};

const term& system_name() {
  static const term t(std::string_view("athanor"));
  return t;
}

term info_reply(const atoms& a) {
  return tuple(term(a.info), system_name(), term(long(system_info().schedulers)), term(long(system_info().relief_threads)));
}

// {From, Msg} -> From ! Msg, and the hello/info questions.
proc echo_proc(process& self) {
  const atoms a;
  for (;;) {
    term m = co_await self.receive<term>();
    if (!m.is_tuple() || m.tuple_size() != 2) continue;
    const term& first = m.element(0);
    if (first.is_pid()) {
      send(first.as_pid(), m.element(1));
      g_echoed.fetch_add(1, std::memory_order_relaxed);
    } else if (first.is_atom(a.hello) && m.element(1).is_pid()) {
      send(m.element(1).as_pid(), tuple(term(a.echo), term(self.self()), system_name()));
    } else if (first.is_atom(a.info) && m.element(1).is_pid()) {
      send(m.element(1).as_pid(), info_reply(a));
    }
  }
}

// Counts binaries; acks every K of them to whoever started the session.
proc sink_proc(process& self) {
  const atoms a;
  pid from;
  long k = 1, count = 0;
  for (;;) {
    term m = co_await self.receive<term>();
    if (m.is_binary()) {
      ++count;
      if (count % k == 0 && from) send(from, tuple(term(a.ack), term(count)));
      continue;
    }
    if (!m.is_tuple() || m.tuple_size() < 2 || !m.element(0).is_atom() || !m.element(1).is_pid()) continue;
    const atom tag = m.element(0).as_atom();
    const pid who = m.element(1).as_pid();
    if (tag == a.start && m.tuple_size() == 3 && m.element(2).is_int64()) {
      from = who;
      k = std::max<std::int64_t>(1, m.element(2).as_int());
      count = 0;
    } else if (tag == a.stop) {
      g_sunk.fetch_add(count, std::memory_order_relaxed);
      send(who, tuple(term(a.done), term(count)));
    } else if (tag == a.hello) {
      send(who, tuple(term(a.sink), term(self.self()), system_name()));
    } else if (tag == a.info) {
      send(who, info_reply(a));
    }
  }
}

dist::node_config node_config_for(const std::string& name, const std::string& cookie, std::uint16_t epmd_port) {
  dist::node_config c;
  c.name = name;
  c.cookie = cookie;
  c.listen_host = "127.0.0.1";
  c.epmd.epmd = {.host = "127.0.0.1", .port = epmd_port};
  c.epmd.server.port = epmd_port;
  return c;
}

std::uint16_t epmd_port_from_env() {
  const std::string v = env_or("ERL_EPMD_PORT", "");
  if (v.empty()) return 0;
  long p = std::strtol(v.c_str(), nullptr, 10);
  if (p <= 0 || p > 65535) throw std::runtime_error("ERL_EPMD_PORT: not a port: " + v);
  return std::uint16_t(p);
}

// ---- dist_peer ---------------------------------------------------------------------------------
// A node with athanor_bench_echo and athanor_bench_sink registered, until SIGTERM/SIGINT or
// --seconds (default 600) pass. Name: ATHANOR_NODE (default athanor_bench_peer_<pid>@localhost).
void dist_peer(const options& o) {
  // The signals are waited for by this thread: blocked before the runtime's threads exist, so
  // that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // Started by a driver: end with it, whatever way it ends.
  if (const char* parent = std::getenv("ATHANOR_BENCH_PARENT_PID")) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != pid_t(std::strtol(parent, nullptr, 10))) return;
  }
  const std::string name = env_or("ATHANOR_NODE", fmt::format("athanor_bench_peer_{}@localhost", ::getpid()));
  const std::string cookie = env_or("ATHANOR_COOKIE", kDefaultCookie);
  std::uint16_t epmd_port = epmd_port_from_env();
  if (epmd_port == 0) epmd_port = dist::default_epmd_port();
  runtime rt(config_for(o));
  // Registered before the node is: once EPMD knows the node, its names answer.
  register_name(atom(kEchoName), spawn(echo_proc));
  register_name(atom(kSinkName), spawn(sink_proc));
  dist::node n = dist::start(node_config_for(name, cookie, epmd_port));
  std::fprintf(stderr, "dist_peer: node %s up (EPMD port %u)\n", n.name().name().data(), unsigned(epmd_port));
  const long lifetime = o.get("seconds", 600);
  timespec ts{.tv_sec = lifetime, .tv_nsec = 0};
  ::sigtimedwait(&stop_signals, nullptr, &ts);
  print_line(fmt::format(R"({{"bench":"dist_peer","system":"athanor","node":"{}","schedulers":{},"echoed":{},"sunk_msgs":{}}})",
                         n.name().name(), effective_schedulers(rt), g_echoed.load(), g_sunk.load()));
  n.stop();
}

// ---- the driver's side ---------------------------------------------------------------------------

// The driver's node and its peer: the peer it started (if any) ends with this object.
class dist_setup {
 public:
  std::string cookie, self_name, peer_name;
  std::uint16_t epmd_port = 0;
  bool own_peer = false;
  unsigned schedulers = 0;

  explicit dist_setup(const options& o) : schedulers(o.schedulers) {
    cookie = env_or("ATHANOR_COOKIE", kDefaultCookie);
    epmd_port = epmd_port_from_env();
    if (epmd_port == 0) epmd_port = free_loopback_port();  // a private EPMD: ours, embedded
    self_name = env_or("ATHANOR_NODE", fmt::format("athanor_bench_{}@localhost", ::getpid()));
    peer_name = env_or("ATHANOR_BENCH_PEER", "");
    if (peer_name.empty()) {
      own_peer = true;
      peer_name = fmt::format("athanor_bench_peer_{}@localhost", ::getpid());
    }
  }
  ~dist_setup() { stop_peer(); }

  // Starts `athanor-bench dist_peer` (after this node is up, so that its EPMD is there), its
  // stdout on our stderr: our stdout has one line, the result.
  void start_peer() {
    if (!own_peer) return;
    const std::string exe = self_exe();
    std::vector<std::string> args = {"athanor-bench", "dist_peer"};
    if (schedulers) {
      args.push_back("--schedulers");
      args.push_back(std::to_string(schedulers));
    }
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      std::string_view v(*e);
      if (v.starts_with("ATHANOR_NODE=") || v.starts_with("ATHANOR_COOKIE=") || v.starts_with("ERL_EPMD_PORT=") ||
          v.starts_with("ATHANOR_BENCH_PEER=") || v.starts_with("ATHANOR_BENCH_PARENT_PID=") ||
          v.starts_with("ATHANOR_SCHEDULERS=")) {
        continue;
      }
      env.emplace_back(v);
    }
    env.push_back("ATHANOR_NODE=" + peer_name);
    env.push_back("ATHANOR_COOKIE=" + cookie);
    env.push_back("ERL_EPMD_PORT=" + std::to_string(epmd_port));
    env.push_back("ATHANOR_BENCH_PARENT_PID=" + std::to_string(::getpid()));
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    ::pid_t child = -1;
    const int err = posix_spawn(&child, exe.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) throw std::runtime_error(std::string("cannot start the peer: ") + std::strerror(err));
    child_ = child;
  }
  void stop_peer() {
    if (child_ <= 0) return;
    ::kill(child_, SIGTERM);
    int status = 0;
    ::waitpid(child_, &status, 0);
    child_ = -1;
  }

 private:
  ::pid_t child_ = -1;
};

// The peer's process registered as `name`: waits for the peer's node to register with EPMD, then
// asks {hello, self()} until it answers {Tag, Pid, System} (an Erlang peer registers its names
// a moment after its node). nullopt after 30 s.
struct found_process {
  pid where;
  std::string system;
};
task<std::optional<found_process>> find_peer_process(process& self, const dist_setup& s, const char* name) {
  const auto give_up = clock_type::now() + 30s;
  const std::string alive = s.peer_name.substr(0, s.peer_name.find('@'));
  for (;;) {
    std::optional<dist::epmd_node> there;
    try {
      there = co_await dist::epmd_port_please(alive, {.host = "127.0.0.1", .port = s.epmd_port}, 1000ms);
    } catch (const std::exception&) {
    }
    if (there) break;
    if (clock_type::now() > give_up) co_return std::nullopt;
    co_await self.sleep(20ms);
  }
  const atom hello("hello"), peer_node(s.peer_name);
  while (clock_type::now() < give_up) {
    send(name_on_node{atom(name), peer_node}, tuple(term(hello), term(self.self())));
    std::optional<term> r = co_await self.receive_for<term>(500ms);
    if (r && r->is_tuple() && r->tuple_size() == 3 && r->element(1).is_pid()) {
      const term& sys = r->element(2);
      co_return found_process{r->element(1).as_pid(), sys.is_binary() ? std::string(sys.as_binary()) : "?"};
    }
  }
  co_return std::nullopt;
}

struct peer_info {
  std::string system = "?";
  long schedulers = -1, relief_threads = -1;
};
task<peer_info> ask_info(process& self, pid echo) {
  send(echo, tuple(term(atom("info")), term(self.self())));
  peer_info i;
  for (;;) {
    std::optional<term> r = co_await self.receive_for<term>(5s);
    if (!r) co_return i;
    if (r->is_tuple() && r->tuple_size() == 4 && r->element(0).is_atom(atom("info"))) {
      if (r->element(1).is_binary()) i.system = std::string(r->element(1).as_binary());
      if (r->element(2).is_int64()) i.schedulers = long(r->element(2).as_int());
      if (r->element(3).is_int64()) i.relief_threads = long(r->element(3).as_int());
      co_return i;
    }
  }
}

// Starts this node and the peer, finds the peer's echo, runs `body` (a coroutine returning the
// workload's JSON fields) in a process, adds the peer's facts and prints the line. Exits 1 with
// a line on stderr if something fails.
template <class Body>
void run_driver(const options& o, const char* bench, Body body) {
  dist_setup s(o);
  runtime rt(config_for(o));
  dist::node n = dist::start(node_config_for(s.self_name, s.cookie, s.epmd_port));
  s.start_peer();
  std::promise<std::string> result;
  std::future<std::string> f = result.get_future();
  spawn([&](process& self) -> proc {
    try {
      std::optional<found_process> echo = co_await find_peer_process(self, s, kEchoName);
      if (!echo) throw std::runtime_error("the peer " + s.peer_name + " did not answer");
      std::string fields = co_await body(self, s, *echo);
      peer_info info = co_await ask_info(self, echo->where);
      fields += fmt::format(R"(,"peer":"{}","peer_node":"{}","peer_schedulers":{},"peer_relief_threads":{})", info.system,
                            s.peer_name, info.schedulers, info.relief_threads);
      result.set_value(std::move(fields));
    } catch (...) {
      result.set_exception(std::current_exception());
    }
  });
  std::string fields;
  try {
    fields = f.get();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", bench, e.what());
    s.stop_peer();
    n.stop();
    std::exit(1);
  }
  print_line(fmt::format(R"({{"bench":"{}","system":"athanor","schedulers":{},{}}})", bench, effective_schedulers(rt), fields));
  s.stop_peer();  // first: our node may be the EPMD it is registered with
  n.stop();
}

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  return v[std::min(v.size() - 1, std::size_t(q * double(v.size())))];
}

// ---- dist_ping_pong ------------------------------------------------------------------------------
void dist_ping_pong(const options& o) {
  const double seconds = seconds_of(o, 3);
  run_driver(o, "dist_ping_pong", [seconds](process& self, const dist_setup&, found_process echo) -> task<std::string> {
    const term me(self.self());
    std::vector<double> lat;
    lat.reserve(1 << 20);
    long n = 0;
    double ns = 0;
    for (int phase = 0; phase < 2; ++phase) {  // a warm-up, then the measurement
      const auto length = std::chrono::duration<double>(phase == 0 ? std::min(1.0, seconds / 10) : seconds);
      lat.clear();
      n = 0;
      const auto t0 = clock_type::now();
      const auto until = t0 + std::chrono::duration_cast<clock_type::duration>(length);
      for (;;) {
        const auto t = clock_type::now();
        send(echo.where, tuple(me, term(n)));
        term r = co_await self.receive<term>();
        const auto t2 = clock_type::now();
        if (!r.is_int64() || r.as_int() != n) throw std::runtime_error("unexpected reply " + r.to_string());
        ++n;
        lat.push_back(double(std::chrono::duration_cast<std::chrono::nanoseconds>(t2 - t).count()));
        if (t2 >= until) {
          ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(t2 - t0).count());
          break;
        }
      }
    }
    std::sort(lat.begin(), lat.end());
    co_return fmt::format(
        R"("n":{},"seconds":{:.2f},"roundtrips_per_sec":{:.0f},"ns_per_roundtrip":{:.1f},"p50_us":{:.1f},"p99_us":{:.1f},"max_us":{:.1f})",
        n, ns / 1e9, double(n) / (ns / 1e9), ns / double(n), percentile(lat, 0.5) / 1e3, percentile(lat, 0.99) / 1e3,
        lat.empty() ? 0.0 : lat.back() / 1e3);
  });
}

// ---- dist_throughput -----------------------------------------------------------------------------
void dist_throughput(const options& o) {
  const double seconds = seconds_of(o, 3);
  const long size = o.get("size", 100);
  const long window = o.get("window", std::clamp<long>((8l << 20) / size, 8, 8000));
  const long k = std::max<long>(1, window / 8);
  run_driver(o, "dist_throughput", [=](process& self, const dist_setup& s, found_process) -> task<std::string> {
    std::optional<found_process> sink = co_await find_peer_process(self, s, kSinkName);
    if (!sink) throw std::runtime_error("the peer's sink did not answer");
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = std::byte(i * 131 + 7);
    const term bin = term::binary(bytes);
    const term me(self.self());
    const atom start("start"), stop("stop"), ack("ack"), done("done");
    long sent = 0;
    double ns = 0;
    for (int phase = 0; phase < 2; ++phase) {  // a warm-up, then the measurement
      const auto length = std::chrono::duration<double>(phase == 0 ? std::min(1.0, seconds / 10) : seconds);
      send(sink->where, tuple(term(start), me, term(k)));
      sent = 0;
      long acked = 0;
      const auto t0 = clock_type::now();
      const auto until = t0 + std::chrono::duration_cast<clock_type::duration>(length);
      for (;;) {
        while (sent - acked < window) {
          send(sink->where, bin);
          ++sent;
          co_await self.consume(1);  // a long loop of sends checkpoints (see ring)
        }
        term a = co_await self.receive<term>();
        if (a.is_tuple() && a.tuple_size() == 2 && a.element(0).is_atom(ack)) acked = long(a.element(1).as_int());
        if (clock_type::now() >= until) break;
      }
      send(sink->where, tuple(term(stop), me));
      for (;;) {
        term a = co_await self.receive<term>();
        if (a.is_tuple() && a.tuple_size() == 2 && a.element(0).is_atom(done)) {
          if (a.element(1).as_int() != sent) {
            throw std::runtime_error(fmt::format("the sink counted {} of {} messages", a.element(1).as_int(), sent));
          }
          break;
        }
      }
      ns = ns_since(t0);
    }
    const double per_sec = double(sent) / (ns / 1e9);
    co_return fmt::format(
        R"("size":{},"window":{},"ack_every":{},"n":{},"seconds":{:.2f},"msgs_per_sec":{:.0f},"mb_per_s":{:.1f})", size,
        window, k, sent, ns / 1e9, per_sec, per_sec * double(size) / 1e6);
  });
}

// ---- tcp_throughput ------------------------------------------------------------------------------
// Raw loopback TCP between two OS processes, the bound for large messages: the sender write()s
// one --size buffer after another for --seconds, the receiver read()s into a buffer of up to
// 1 MiB and discards; the clock stops when the receiver has read everything (it answers the
// sender's end of stream with the byte count). Blocking sockets, no framing, no runtime.
void tcp_throughput(const options& o) {
  const double seconds = seconds_of(o, 3);
  const long size = o.get("size", 1 << 20);
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::fprintf(stderr, "tcp_throughput: listen: %s\n", std::strerror(errno));
    std::exit(1);
  }
  std::fflush(nullptr);
  const ::pid_t child = ::fork();
  if (child == 0) {  // the receiver
    int c = ::accept(lfd, nullptr, nullptr);
    std::vector<char> buf(std::size_t(std::clamp<long>(size, 64 << 10, 1 << 20)));
    std::uint64_t total = 0;
    for (;;) {
      ssize_t n = ::read(c, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      total += std::uint64_t(n);
    }
    (void)!::write(c, &total, sizeof total);
    ::_exit(0);
  }
  ::close(lfd);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::fprintf(stderr, "tcp_throughput: connect: %s\n", std::strerror(errno));
    std::exit(1);
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // as distribution sockets
  std::vector<char> data(static_cast<std::size_t>(size));
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = char(i * 131 + 7);
  long sent = 0;
  const auto t0 = clock_type::now();
  const auto until = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  while (clock_type::now() < until) {
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t w = ::write(fd, data.data() + off, data.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        std::fprintf(stderr, "tcp_throughput: write: %s\n", std::strerror(errno));
        std::exit(1);
      }
      off += std::size_t(w);
    }
    ++sent;
  }
  ::shutdown(fd, SHUT_WR);
  std::uint64_t total = 0;
  const bool answered = ::read(fd, &total, sizeof total) == ssize_t(sizeof total);
  const double ns = ns_since(t0);
  ::close(fd);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!answered || total != std::uint64_t(sent) * std::uint64_t(size)) {
    std::fprintf(stderr, "tcp_throughput: the receiver read %llu of %llu bytes\n", (unsigned long long)total,
                 (unsigned long long)(std::uint64_t(sent) * std::uint64_t(size)));
    std::exit(1);
  }
  const double per_sec = double(sent) / (ns / 1e9);
  print_line(fmt::format(
      R"({{"bench":"tcp_throughput","system":"raw_tcp","size":{},"n":{},"seconds":{:.2f},"msgs_per_sec":{:.0f},"mb_per_s":{:.1f},"relief_threads":0}})",
      size, sent, ns / 1e9, per_sec, per_sec * double(size) / 1e6));
}

}  // namespace

ATHANOR_BENCH_WORKLOAD("dist_ping_pong", dist_ping_pong);
ATHANOR_BENCH_WORKLOAD("dist_throughput", dist_throughput);
ATHANOR_BENCH_WORKLOAD("dist_peer", dist_peer);
ATHANOR_BENCH_WORKLOAD("tcp_throughput", tcp_throughput);
