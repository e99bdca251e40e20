// Size-class memory pool for coroutine frames, messages and runtime nodes (internal API). Thread-safe.
//
// Why hand-rolled: frames and messages are allocated on one scheduler thread and
// freed on another at tens of millions per second; a size-class pool with
// per-thread caches and a shared depot keeps each operation to a few pointer
// moves, and carves memory from large huge-page-backed chunks so that a million
// processes touch as few fresh pages as possible (a page fault costs 11-30 us
// on our target VMs). Memory is never returned to the OS: it is reused.
//
// Under sanitizers (ATHANOR_SANITIZED) every call goes to ::operator new/delete
// so that ASan sees each block's real lifetime.
#pragma once

#include <cstddef>
#include <cstdint>

namespace athanor::detail {

inline constexpr std::size_t kPoolGranule = 16;
inline constexpr std::size_t kPoolMaxSize = 1024;  // larger blocks go to ::operator new

// Returns a block of at least `size` bytes aligned to 16; throws std::bad_alloc on exhaustion.
void* pool_alloc(std::size_t size);
// Returns a block obtained from pool_alloc(size) with the same size.
void pool_free(void* p, std::size_t size) noexcept;

// Bytes currently handed out by the pool (all threads), for system_info().
std::int64_t pool_bytes_in_use() noexcept;

// Reserves `bytes` of address space backed lazily by (huge) pages; never fails
// for a sane size on Linux (MAP_NORESERVE); throws std::bad_alloc otherwise.
void* reserve_address_space(std::size_t bytes);
// Returns address space obtained from reserve_address_space(bytes).
void release_address_space(void* p, std::size_t bytes) noexcept;

}  // namespace athanor::detail
