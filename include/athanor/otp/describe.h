// athanor::describe(value): a term that shows a C++ value in crash reports and logs (the last
// message a server got, its state). Thread-safe (a pure function).
//
// Terms describe themselves; numbers, strings and pids become the matching terms; a type with
// `athanor::term athanor_describe(const T&)` findable by argument-dependent lookup uses it;
// anything else is shown as its type's name, as a binary such as <<"counter::get">>: crash
// reports must never fail because a message cannot be printed.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

namespace athanor {

// The demangled name of a C++ type (e.g. "counter::get").
std::string type_name(const std::type_info& type);

template <class T>
term describe(const T& value) {
  using U = std::remove_cvref_t<T>;
  if constexpr (requires { { athanor_describe(value) } -> std::convertible_to<term>; }) {
    return athanor_describe(value);
  } else if constexpr (std::is_same_v<U, term> || std::is_same_v<U, atom> || std::is_same_v<U, pid> ||
                       std::is_same_v<U, ref> || std::is_same_v<U, bool>) {
    return term(value);
  } else if constexpr (std::is_integral_v<U>) {
    return term(static_cast<std::int64_t>(value));
  } else if constexpr (std::is_floating_point_v<U>) {
    return term(static_cast<double>(value));
  } else if constexpr (std::is_convertible_v<const U&, std::string_view>) {
    return term(std::string_view(value));
  } else {
    return term(std::string_view(type_name(typeid(U))));
  }
}

}  // namespace athanor
