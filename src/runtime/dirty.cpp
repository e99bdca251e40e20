#include "athanor/runtime/dirty.h"

#include "runtime/internal.h"
#include "runtime/services.h"

namespace athanor::detail {

dirty_pools::dirty_pools(unsigned cpu_threads, unsigned io_threads) {
  start(cpu_, cpu_threads);
  start(io_, io_threads);
}

dirty_pools::~dirty_pools() {
  for (pool* p : {&cpu_, &io_}) {
    {
      std::lock_guard lock(p->mu);
      p->stop = true;
    }
    p->cv.notify_all();
    for (auto& t : p->threads) t.join();
  }
}

void dirty_pools::start(pool& p, unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    p.threads.emplace_back([&p] {
      for (;;) {
        std::function<void()> job;
        {
          std::unique_lock lock(p.mu);
          p.cv.wait(lock, [&] { return p.stop || !p.jobs.empty(); });
          if (p.jobs.empty()) return;  // stopping, and nothing left to run
          job = std::move(p.jobs.front());
          p.jobs.pop_front();
        }
        job();
      }
    });
  }
}

void dirty_pools::submit(kind k, std::function<void()> job) {
  pool& p = k == kind::cpu ? cpu_ : io_;
  {
    std::lock_guard lock(p.mu);
    p.jobs.push_back(std::move(job));
  }
  p.cv.notify_one();
}

void submit_dirty(dirty_kind kind, std::function<void()> job, std::coroutine_handle<> h) {
  process* p = detail::tls().current;
  if (!p || !g_rt) throw std::logic_error("athanor::dirty_cpu/dirty_io: must be awaited in a process");
  auto& s = process_access::st(p);
  s.flags &= ~kEventFired;
  std::uint32_t token = ++s.wait_token;
  s.flags |= kDirtyPending;
  s.wait = wait_kind::event;
  s.resume_point = h;
  pid self = s.self_pid;
  g_rt->dirty->submit(kind == dirty_kind::cpu ? dirty_pools::kind::cpu : dirty_pools::kind::io,
                      [job = std::move(job), self, token] {
                        job();
                        // The process cannot end while kDirtyPending is set, so this push succeeds.
                        deliver(self, make_envelope<sig_wake>(true, token));
                      });
}

}  // namespace athanor::detail
