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
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

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

// The heap memory a message owns beyond its own object, charged to the receiving process
// (process_info's memory_bytes and the max_heap_bytes limit). Strings and vectors count their
// capacity; shared<T> counts nothing (the payload is shared, as a BEAM refc binary). For other
// types that own memory, define `std::size_t athanor_message_bytes(const T&)` in T's namespace.
template <class T>
std::size_t owned_bytes(const T& value);

namespace detail {
template <class T>
struct owned_bytes_of {
  static std::size_t of(const T& v) {
    if constexpr (requires { athanor_message_bytes(v); }) return athanor_message_bytes(v);
    else return 0;
  }
};
template <class C, class Tr, class A>
struct owned_bytes_of<std::basic_string<C, Tr, A>> {
  static std::size_t of(const std::basic_string<C, Tr, A>& s) {
    return s.capacity() > 15 ? (s.capacity() + 1) * sizeof(C) : 0;  // beyond the small-string buffer
  }
};
template <class T, class A>
struct owned_bytes_of<std::vector<T, A>> {
  static std::size_t of(const std::vector<T, A>& v) {
    std::size_t n = v.capacity() * sizeof(T);
    if constexpr (!std::is_trivially_copyable_v<T>)
      for (const T& x : v) n += owned_bytes_of<T>::of(x);
    return n;
  }
};
}  // namespace detail

template <class T>
std::size_t owned_bytes(const T& value) { return detail::owned_bytes_of<T>::of(value); }

namespace detail {

// Identifies a C++ type: the address of a per-type variable, so comparing two costs one compare.
// The variable holds a function returning the type's std::type_info, so a report can still name
// the type of a message nobody expected (type_info_of).
using type_id = const void*;
using type_info_fn = const std::type_info& (*)() noexcept;
template <class T>
const std::type_info& type_info_fn_of() noexcept { return typeid(T); }
template <class T>
struct type_tag { static constexpr type_info_fn id = &type_info_fn_of<T>; };
template <class T>
constexpr type_id type_of() { return &type_tag<std::remove_cvref_t<T>>::id; }
// The std::type_info of the type `id` identifies; `id` must come from type_of<T>().
inline const std::type_info& type_info_of(type_id id) noexcept { return (*static_cast<const type_info_fn*>(id))(); }

struct envelope {
  envelope* next = nullptr;
  type_id type = nullptr;                        // the payload's C++ type (messages and signals alike)
  void (*destroy)(envelope*) noexcept = nullptr;  // runs the payload's destructor and frees the envelope
  std::uint32_t bytes = 0;                       // allocation size, for per-process memory accounting
  bool is_signal = false;                        // signals are handled by the runtime, never received
};

// Builds a T from arguments: parentheses for classes with constructors, braces for aggregates
// (so that `send(p, point{1, 2})`-style signals work where parenthesised aggregate
// initialisation is missing, as in clang 14, without braces picking initializer_list overloads).
template <class T, class... A>
T construct(A&&... a) {
  if constexpr (std::is_aggregate_v<T> && !(sizeof...(A) == 1 && (std::is_same_v<std::remove_cvref_t<A>, T> && ...)))
    return T{std::forward<A>(a)...};
  else
    return T(std::forward<A>(a)...);
}

template <class T>
struct typed_envelope final : envelope {
  T value;
  template <class... A>
  explicit typed_envelope(A&&... a) : value(construct<T>(std::forward<A>(a)...)) {}
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
  std::size_t bytes = sizeof(typed_envelope<T>) + owned_bytes(e->value);
  e->bytes = bytes > 0xFFFFFFFFu ? 0xFFFFFFFFu : std::uint32_t(bytes);
  e->is_signal = is_signal;
  return e;
}

template <class T>
T& payload(envelope* e) { return static_cast<typed_envelope<T>*>(e)->value; }

inline void destroy_envelope(envelope* e) noexcept { e->destroy(e); }

}  // namespace detail

// A received message of any type, owned by the receiver (process::receive_any()); generic code
// such as a gen_server loop inspects its type and takes the value out. Move-only; not thread-safe.
class message {
 public:
  message() noexcept = default;
  explicit message(detail::envelope* e) noexcept : e_(e) {}
  message(message&& other) noexcept : e_(std::exchange(other.e_, nullptr)) {}
  message& operator=(message&& other) noexcept {
    if (this != &other) {
      reset();
      e_ = std::exchange(other.e_, nullptr);
    }
    return *this;
  }
  message(const message&) = delete;
  message& operator=(const message&) = delete;
  ~message() { reset(); }

  // False for an empty message (a receive that timed out, or one moved from).
  explicit operator bool() const noexcept { return e_ != nullptr; }
  // True if the message holds a T.
  template <class T>
  bool is() const noexcept { return e_ && e_->type == detail::type_of<T>(); }
  // The value, which must be a T (check with is<T>()).
  template <class T>
  T& get() noexcept { return detail::payload<T>(e_); }
  // A pointer to the value if it is a T, else null.
  template <class T>
  T* get_if() noexcept { return is<T>() ? &detail::payload<T>(e_) : nullptr; }
  // The identity of the value's C++ type (detail::type_of<T>()).
  detail::type_id type() const noexcept { return e_ ? e_->type : nullptr; }
  // The value's C++ type (for reports: demangle its name()), or null for an empty message.
  const std::type_info* type_info() const noexcept { return e_ ? &detail::type_info_of(e_->type) : nullptr; }

 private:
  void reset() noexcept {
    if (e_) detail::destroy_envelope(std::exchange(e_, nullptr));
  }
  detail::envelope* e_ = nullptr;
};
}  // namespace athanor
