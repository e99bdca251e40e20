// athanor term memory: the cache of large blocks that decoded terms live in.
//
// A decoded message is one allocation (see etf.h). A large one (256 KiB and up: a 1 MiB binary
// from another node) is mapped from the operating system on its own, and a fresh mapping costs a
// page fault per 4 KiB touched: on a virtual machine that was most of the time a 1 MiB message
// took to arrive. So such blocks, once freed, are kept for the next decode of about their size,
// as the BEAM's segment cache keeps them, and unmapped after being unused for a while: memory
// still goes back to the system when the traffic stops (the runtime trims every second).
//
// Thread-safety: every function may be called from any thread at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace athanor {

struct term_memory_stats {
  std::size_t cached_blocks = 0;   // freed large blocks kept for reuse
  std::size_t cached_bytes = 0;    // their size (at most term_memory_cache_limit)
  std::uint64_t mapped = 0;        // large blocks mapped fresh, since the start
  std::uint64_t reused = 0;        // large blocks taken from the cache, since the start
};

// The most the cache keeps: 64 MiB in 8 blocks; a block freed beyond that is unmapped at once.
inline constexpr std::size_t term_memory_cache_limit = std::size_t(64) << 20;

// A snapshot of the cache.
term_memory_stats term_memory() noexcept;

// Unmaps the cached blocks unused for at least `unused_for` (every one with 0). The runtime calls
// it every second with 2 s; call it with 0 to give everything back at once.
void release_term_memory(std::chrono::milliseconds unused_for = std::chrono::milliseconds(0)) noexcept;

}  // namespace athanor
