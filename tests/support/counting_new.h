// A counting operator new for the tests that check code paths do not allocate. Include it in
// exactly one source file of a test binary (it replaces the global operator new and delete).
//
// Tests set t_counting and read t_allocations: the operator new calls made by the calling thread
// while the flag is set. Every form of new and delete is replaced (with malloc and free), so
// sanitizers see matching pairs. Not under clang's TSan, whose runtime is linked statically and
// defines every operator new itself: there ATHANOR_NO_COUNTING_NEW is defined and the counting
// tests skip (the other builds count).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ATHANOR_NO_COUNTING_NEW 1
#endif
#endif

namespace athanor::testing_support {
inline thread_local bool t_counting = false;
inline thread_local long t_allocations = 0;

inline void* counted_alloc(std::size_t n) {
  if (t_counting) ++t_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
inline void* counted_aligned_alloc(std::size_t n, std::align_val_t a) {
  if (t_counting) ++t_allocations;
  std::size_t align = static_cast<std::size_t>(a);
  std::size_t size = (n + align - 1) / align * align;
  if (void* p = std::aligned_alloc(align, size ? size : align)) return p;
  throw std::bad_alloc();
}
inline void* counted_alloc_or_null(std::size_t n) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
}  // namespace athanor::testing_support

#ifndef ATHANOR_NO_COUNTING_NEW
void* operator new(std::size_t n) { return athanor::testing_support::counted_alloc(n); }
void* operator new[](std::size_t n) { return athanor::testing_support::counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return athanor::testing_support::counted_alloc_or_null(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return athanor::testing_support::counted_alloc_or_null(n); }
void* operator new(std::size_t n, std::align_val_t a) { return athanor::testing_support::counted_aligned_alloc(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return athanor::testing_support::counted_aligned_alloc(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif  // ATHANOR_NO_COUNTING_NEW
