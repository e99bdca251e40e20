// application: the calling thread waits in poll() on a signalfd (SIGTERM, SIGINT) and an eventfd
// (stop() and the controller process's news); a controller process owns the tree.
//
// Why a controller process: the top supervisor must be linked to a process that traps exits,
// so that its death arrives as a message and the stop is an ordinary exit(Top, shutdown) with a
// wait for its 'EXIT' (as OTP's application master). Why signalfd rather than a handler: the
// signal becomes a readable fd the main thread polls next to the eventfd, with no
// async-signal-safety constraints on what happens next.
#include "athanor/otp/application.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "athanor/otp/gen_server.h"
#include "athanor/otp/logger.h"

namespace athanor {

struct application::shared_state {
  enum class news { none, started, failed, ended };
  application_options opts;
  int wake_fd = -1;                    // eventfd: stop() and the controller write to it
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> ran{false};
  std::mutex mu;
  news what = news::none;              // guarded by mu
  term reason;                         // guarded by mu: why the start failed / the top ended
  bool stopped_by_request = false;     // guarded by mu

  ~shared_state() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  void wake() noexcept {
    std::uint64_t one = 1;
    ssize_t n = ::write(wake_fd, &one, sizeof one);
    (void)n;  // the counter cannot overflow in practice; a failed write leaves it readable anyway
  }
  void post(news n, term why, bool requested = false) {
    {
      std::lock_guard lock(mu);
      what = n;
      reason = std::move(why);
      stopped_by_request = requested;
    }
    wake();
  }
};

namespace {

struct app_stop {};

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// The controller: starts the tree, reports, waits for a stop request or the top's end.
proc controller(process& self, std::shared_ptr<application::shared_state> st) {
  using news = application::shared_state::news;
  self.trap_exit(true);
  std::optional<start_result> r;
  try {
    start_result got = co_await st->opts.start();
    r.emplace(std::move(got));
  } catch (...) {
    r.emplace(start_result::error(detail::exit_reason_of(std::current_exception())));
  }
  if (!r->ok()) {
    st->post(news::failed, r->ignored() ? term(atoms::ignore) : r->error());
    co_return;
  }
  pid top = r->pid();
  st->post(news::started, term(top));
  auto from_top = [top](const exit_signal& x) { return x.from == top; };
  auto top_ended = on<exit_signal>(from_top, [](exit_signal& x) { return std::optional<term>(x.reason); });
  auto asked = on<app_stop>([](app_stop&) { return std::optional<term>(); });
  std::optional<term> ended = co_await self.receive(std::move(top_ended), std::move(asked));
  if (ended) {
    st->post(news::ended, *ended, false);
    co_return;
  }
  // OTP's application master: exit(Top, shutdown) and wait, for as long as it takes, for the
  // top supervisor to stop its children and end.
  exit(top, term(atoms::shutdown));
  auto top_gone = on<exit_signal>(from_top, [](exit_signal& x) { return x.reason; });
  term why = co_await self.receive(std::move(top_gone));
  st->post(news::ended, why, true);
}

}  // namespace

application::application(application_options opts) : st_(std::make_shared<shared_state>()) {
  st_->opts = std::move(opts);
  st_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (st_->wake_fd < 0) throw std::system_error(errno, std::generic_category(), "athanor::application: eventfd");
}

application::~application() {
  // The controller may still hold the state (run() not called, or still finishing): it only
  // writes to the eventfd, which stays open as long as the state lives.
}

void application::block_signals() {
  sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void application::stop() noexcept {
  st_->stop_requested.store(true);
  st_->wake();
}

int application::run() {
  using news = shared_state::news;
  if (st_->ran.exchange(true)) throw std::logic_error("athanor::application::run: called twice");
  const std::string& name = st_->opts.name;

  sigset_t set = stop_signals();
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &set, &previous);  // before the runtime's threads exist: they inherit it
  int sig_fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) {
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw std::system_error(e, std::generic_category(), "athanor::application: signalfd");
  }

  std::unique_ptr<runtime> own;
  try {
    own = std::make_unique<runtime>(st_->opts.runtime);
  } catch (const std::logic_error&) {
    // A runtime exists already (the program made its own): use it.
  }

  auto st = st_;
  pid ctl = spawn([st](process& self) -> proc { return controller(self, st); });

  bool running = false, stop_sent = false, stop_wanted = false;
  int code = 0;
  for (;;) {
    pollfd fds[2] = {{sig_fd, POLLIN, 0}, {st_->wake_fd, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(sig_fd, &info, sizeof info) == ssize_t(sizeof info)) {
        logger::log("otp", log_level::notice, fmt::format("application {}: received {}, stopping", name, info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM"));
        stop_wanted = true;
      }
    }
    if (fds[1].revents & POLLIN) {
      std::uint64_t drained;
      ssize_t r = ::read(st_->wake_fd, &drained, sizeof drained);
      (void)r;
    }
    if (st_->stop_requested.load()) stop_wanted = true;

    news what;
    term reason;
    bool requested;
    {
      std::lock_guard lock(st_->mu);
      what = st_->what;
      reason = st_->reason;
      requested = st_->stopped_by_request;
    }
    if (what == news::failed) {
      logger::log("otp", log_level::error, fmt::format("application {} could not start: {}", name, reason.to_string()), {{"reason", reason}});
      code = 1;
      break;
    }
    if (what == news::ended) {
      if (requested || is_normal_exit(reason)) {
        logger::log("otp", log_level::notice, fmt::format("application {} stopped", name));
        code = 0;
      } else {
        logger::log("otp", log_level::error, fmt::format("application {} exited: {}", name, reason.to_string()), {{"reason", reason}});
        code = 1;
      }
      break;
    }
    if (what == news::started) running = true;
    if (running && stop_wanted && !stop_sent) {
      send(ctl, app_stop{});
      stop_sent = true;
    }
  }

  // Drain signals that came meanwhile, so restoring the mask does not deliver them.
  signalfd_siginfo info;
  while (::read(sig_fd, &info, sizeof info) == ssize_t(sizeof info)) {
  }
  ::close(sig_fd);
  own.reset();  // ends what is left of our own runtime (nothing of the tree: it has stopped)
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return code;
}

}  // namespace athanor
