// Integers of any size, as Erlang has them: a term integer is stored in place when it fits 64
// bits and as a bignum otherwise, and these functions take and return either form. Thread-safe:
// they share no state.
//
//   term big = integer_from_string("123456789012345678901234567890");   // a bignum
//   term sum = add(big, 1);                                              // ...891
//   std::string hex = integer_to_string(sum, 16);                        // "18EE90FF6C373E0EE4E3F0AD3"
//   term small = subtract(sum, big);                                     // 1, in place again
//
// Results are normalised: a result that fits 64 bits is never a bignum, so == and hashing work
// on results without further care.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "athanor/term/term.h"

namespace athanor {

// athanor::badarith — thrown by the arithmetic functions for an operand that is not a number
// or a result Erlang could not hold (a float overflow). Thread-safe to copy, like every
// exception.
class badarith : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Returns the integer written in `text`: an optional sign, then digits of `base` (2..36,
// letters in either case), as Erlang's list_to_integer/2. Throws std::invalid_argument for
// anything else (an empty string, a stray character, a bad base); std::bad_alloc.
term integer_from_string(std::string_view text, int base = 10);

// Returns an integer (either form) in `base` (2..36; letters upper case, as
// integer_to_list/2). Throws bad_term_access if `t` is not an integer, std::invalid_argument
// for a bad base.
std::string integer_to_string(const term& t, int base = 10);

// Erlang's +, - and *: integers give exact integers (of any size); if either operand is a
// float the result is a float. Return the result; throw badarith for a non-number operand or a
// float result that is not finite, std::bad_alloc.
term add(const term& a, const term& b);
term subtract(const term& a, const term& b);
term multiply(const term& a, const term& b);

}  // namespace athanor
