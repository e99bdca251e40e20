// Envelopes: how a message or a signal travels to a process (internal API). Not thread-safe by itself;
// the mailbox (process.h) publishes envelopes between threads.
//
// A message is any movable C++ value. send() moves it into a pool-allocated
// envelope tagged with the value's type; receive() moves it out again in the
// receiving process. Nothing is shared mutably: a large immutable payload is
// shared by sending a `shared<T>` (a reference-counted pointer to const), the
// way the BEAM shares large binaries between processes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "athanor/runtime/pool.h"

namespace athanor {

// A reference-counted, immutable payload: cheap to send to many processes.
template <class T>
using shared = std::shared_ptr<const T>;

// Wraps `value` for sharing between processes without copying it again.
template <class T>
shared<std::remove_cvref_t<T>> share(T&& value) {
  return std::make_shared<const std::remove_cvref_t<T>>(std::forward<T>(value));
}

namespace detail {

// Identifies a C++ type without RTTI: the address of a per-type variable.
using type_id = const void*;
template <class T>
struct type_tag { static constexpr char id = 0; };
template <class T>
constexpr type_id type_of() { return &type_tag<std::remove_cvref_t<T>>::id; }

struct envelope {
  envelope* next = nullptr;
  type_id type = nullptr;                        // the payload's C++ type (messages and signals alike)
  void (*destroy)(envelope*) noexcept = nullptr;  // runs the payload's destructor and frees the envelope
  std::uint32_t bytes = 0;                       // allocation size, for per-process memory accounting
  bool is_signal = false;                        // signals are handled by the runtime, never received
};

template <class T>
struct typed_envelope final : envelope {
  T value;
  template <class... A>
  explicit typed_envelope(A&&... a) : value(std::forward<A>(a)...) {}
};

template <class T>
void destroy_typed(envelope* e) noexcept {
  auto* t = static_cast<typed_envelope<T>*>(e);
  t->~typed_envelope<T>();
  pool_free(t, sizeof(typed_envelope<T>));
}

// Returns a new envelope holding T constructed from `a`; throws what T's constructor or the pool throws.
template <class T, class... A>
envelope* make_envelope(bool is_signal, A&&... a) {
  void* mem = pool_alloc(sizeof(typed_envelope<T>));
  typed_envelope<T>* e;
  try {
    e = ::new (mem) typed_envelope<T>(std::forward<A>(a)...);
  } catch (...) {
    pool_free(mem, sizeof(typed_envelope<T>));
    throw;
  }
  e->type = type_of<T>();
  e->destroy = &destroy_typed<T>;
  e->bytes = sizeof(typed_envelope<T>);
  e->is_signal = is_signal;
  return e;
}

template <class T>
T& payload(envelope* e) { return static_cast<typed_envelope<T>*>(e)->value; }

inline void destroy_envelope(envelope* e) noexcept { e->destroy(e); }

}  // namespace detail
}  // namespace athanor
