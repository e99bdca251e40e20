// Large blocks for decoded terms, mapped and cached (see athanor/term/memory.h for why).
// Internal to the term part.
#pragma once

#include <cstddef>
#include <cstdint>

namespace athanor::detail {

// Blocks from this size up come from the cache (smaller ones from operator new).
inline constexpr std::size_t kPooledBlockMinBytes = std::size_t(256) << 10;

// The term_box::size of a shared block's header whose memory came from pooled_allocate (a
// header's size field is otherwise 0, and no freed box kind reaching free_block_memory has
// this size).
inline constexpr std::uint32_t kPooledBlockMark = 0xFFFFFFFFu;

// At least `bytes` (>= kPooledBlockMinBytes), aligned to 64 bytes: a cached block of about that
// size, or a fresh mapping. Throws std::bad_alloc.
void* pooled_allocate(std::size_t bytes);
// Gives a block from pooled_allocate back: cached, or unmapped when the cache is full.
void pooled_free(void* p) noexcept;

}  // namespace athanor::detail
