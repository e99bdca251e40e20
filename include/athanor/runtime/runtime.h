// athanor::runtime: the schedulers, timers, I/O poller and process table that processes run on.
// Thread-safe. One runtime exists at a time; the free functions in process.h use it.
//
//   int main() {
//     athanor::runtime rt;                 // one scheduler thread per core
//     athanor::spawn([](athanor::process& self) -> athanor::proc { ... });
//     rt.wait();                           // until every process has ended
//   }
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "athanor/runtime/process.h"

namespace athanor {

// Thrown by spawn() when the process limit is reached (Erlang's system_limit).
class system_limit_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct runtime_config {
  unsigned schedulers = 0;                       // scheduler threads; 0: one per core
  std::size_t max_processes = 1u << 24;          // live processes at most (16,777,216); spawn fails beyond
  std::size_t max_heap_bytes = 0;                // default per-process memory limit; 0: none
  std::int32_t reductions_per_slice = 4000;      // budget of one time slice (as the BEAM's)
  // A process that has used this much CPU time without suspending is a hog: what waits behind it
  // goes to the other schedulers, or, if every one is held by a hog, to a relief thread.
  std::chrono::milliseconds hog_threshold{10};
  unsigned max_relief_threads = 64;              // extra scheduler threads started for hogs, at most
  unsigned dirty_cpu_threads = 0;                // 0: one per core
  unsigned dirty_io_threads = 10;
  // Attached sockets (tcp_socket::attach) do their reads and writes through an io_uring per
  // scheduler when the kernel allows it (else, and with false, through epoll). The environment
  // variable ATHANOR_IO_URING=0 also turns it off.
  bool io_uring = true;
  // Allocations of at least this many bytes are mapped on their own and unmapped when freed, so
  // that a large buffer (a request body, a big message) goes back to the operating system as soon
  // as it is freed. glibc's own threshold starts at 128 KiB but rises to the size of the largest
  // block freed, after which such blocks stay in the heap for good: a server that once took
  // forty 8 MiB uploads kept 380 MB. 0 leaves malloc's settings alone. Process-wide (mallopt).
  std::size_t mapped_allocation_bytes = 256 * 1024;
};

// A snapshot of one process (Erlang's process_info/1).
struct process_info_t {
  // suspended: held by back-pressure at a suspension point (a send to a busy connection; remote.h).
  enum class status_t { running, runnable, waiting, exiting, suspended };
  pid id;
  status_t status = status_t::waiting;
  std::size_t message_queue_len = 0;
  std::size_t memory_bytes = 0;       // control block, stack frames and queued messages
  std::uint64_t reductions = 0;
  std::vector<pid> links;
  std::vector<pid> monitors;          // processes this one monitors
  std::vector<pid> monitored_by;
  std::optional<atom> registered_name;
  bool trap_exit = false;
};

struct scheduler_info {
  double utilization = 0;             // fraction of wall time not asleep, since the scheduler started
  std::size_t run_queue = 0;          // processes waiting in this scheduler's queue
  std::uint64_t processes_run = 0;    // time slices run
  std::uint64_t steals = 0;
};

// A snapshot of the whole runtime (Erlang's system_info/statistics).
struct system_info_t {
  std::size_t process_count = 0;
  std::size_t process_limit = 0;
  unsigned schedulers = 0;
  unsigned relief_threads = 0;        // extra threads started so far because every scheduler was held by a CPU hog
  std::vector<scheduler_info> scheduler;
  std::int64_t memory_total_bytes = 0;     // resident set size of the OS process
  std::int64_t memory_processes_bytes = 0; // process blocks, frames and messages
  std::uint64_t pending_timers = 0;
  std::size_t run_queue = 0;               // processes ready to run and waiting for a scheduler
};

class runtime {
 public:
  // Starts the schedulers. Throws std::logic_error if another runtime exists.
  explicit runtime(runtime_config config = {});
  // Kills every remaining process (reason `kill`), then stops the threads.
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // Blocks the calling (non-scheduler) thread until no process is left.
  void wait();
  // Like wait(), but gives up after `timeout`; returns true if no process is left.
  bool wait_for(std::chrono::milliseconds timeout);

  const runtime_config& config() const;

  struct impl;

 private:
  impl* impl_;
};

// Live processes now.
std::size_t process_count() noexcept;
// Information about a process, or nullopt if it is not alive. From a process, use the awaitable
// form `co_await process_info_async(p)`; this blocking form is for non-scheduler threads.
std::optional<process_info_t> process_info(pid p);
// The awaitable form for process code: co_await returns std::optional<process_info_t>.
task<std::optional<process_info_t>> process_info_async(pid p);
system_info_t system_info();

// The pids of every live process, in process-table order (Erlang's processes/0), or an empty
// vector when no runtime exists. A snapshot: a process spawned or ended while the call runs may
// or may not be listed, and a listed process may have ended by the time the caller looks.
// Thread-safe, from a process or any thread. Cheap enough for introspection and dashboards: it
// takes no lock and sends no message; it reads two words per slot of the process table up to the
// highest number of processes alive at once, and allocates the vector (measured on a 2-vCPU VM:
// 0.3 ms for 100,000 processes with warm caches, a few ms with cold ones).
std::vector<pid> processes();

}  // namespace athanor
