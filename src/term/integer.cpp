// Integers of any size: see athanor/term/integer.h. GMP does the arithmetic; the fast paths
// for two 64-bit operands use the compiler's overflow checks and never touch it.
#include "athanor/term/integer.h"

#include <cctype>
#include <cmath>
#include <vector>

#include <fmt/format.h>
#include <gmp.h>

#include "term/internal.h"

namespace athanor {
namespace {

// An integer as a GMP value that owns its limbs (operands and results of arithmetic).
class big {
 public:
  big() { mpz_init(z_); }
  explicit big(const term& t) {
    if (t.is_bignum()) {
      const detail::bignum_view v = detail::bignum_of(t);
      mpz_init2(z_, v.limbs.size() * 64);
      mpz_import(z_, v.limbs.size(), -1, sizeof(std::uint64_t), 0, 0, v.limbs.data());
      if (v.negative) mpz_neg(z_, z_);
    } else {
      mpz_init(z_);
      const std::int64_t i = t.as_int();
      const std::uint64_t magnitude = i < 0 ? std::uint64_t(0) - std::uint64_t(i) : std::uint64_t(i);
      mpz_import(z_, 1, -1, sizeof magnitude, 0, 0, &magnitude);
      if (i < 0) mpz_neg(z_, z_);
    }
  }
  big(const big&) = delete;
  big& operator=(const big&) = delete;
  ~big() { mpz_clear(z_); }

  mpz_ptr get() { return z_; }

  // Returns the value as a term (in place if it fits 64 bits).
  term to_term() const {
    std::vector<std::uint64_t> limbs(mpz_size(z_));
    std::size_t count = 0;
    mpz_export(limbs.data(), &count, -1, sizeof(std::uint64_t), 0, 0, z_);
    limbs.resize(count);
    return detail::make_integer(mpz_sgn(z_) < 0, limbs);
  }

 private:
  mpz_t z_;
};

double to_double(const term& t) {
  if (t.is_float()) return t.as_double();
  if (t.is_int64()) return double(t.as_int());
  big b(t);
  return mpz_get_d(b.get());  // truncates; Erlang's float/1 rounds, but only for +,-,* on floats
}

void check_number(const term& t, const char* op) {
  if (!t.is_number()) throw badarith(fmt::format("athanor::{}: badarith: {} is not a number", op, t.to_string()));
}

term float_result(double d, const char* op) {
  if (!std::isfinite(d)) throw badarith(fmt::format("athanor::{}: badarith: the float result is not finite", op));
  return term(d);
}

enum class op { add, subtract, multiply };

term arith(const term& a, const term& b, op o, const char* name) {
  check_number(a, name);
  check_number(b, name);
  if (a.is_float() || b.is_float()) {
    const double x = to_double(a), y = to_double(b);
    return float_result(o == op::add ? x + y : o == op::subtract ? x - y : x * y, name);
  }
  if (a.is_int64() && b.is_int64()) {
    std::int64_t r;
    const bool overflow = o == op::add        ? __builtin_add_overflow(a.as_int(), b.as_int(), &r)
                          : o == op::subtract ? __builtin_sub_overflow(a.as_int(), b.as_int(), &r)
                                              : __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
    if (!overflow) return term(r);
  }
  big x(a), y(b), r;
  switch (o) {
    case op::add: mpz_add(r.get(), x.get(), y.get()); break;
    case op::subtract: mpz_sub(r.get(), x.get(), y.get()); break;
    case op::multiply: mpz_mul(r.get(), x.get(), y.get()); break;
  }
  return r.to_term();
}

}  // namespace

term integer_from_string(std::string_view text, int base) {
  if (base < 2 || base > 36) throw std::invalid_argument(fmt::format("athanor::integer_from_string: base {}", base));
  std::string_view digits = text;
  bool negative = false;
  if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) {
    negative = digits.front() == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) throw std::invalid_argument("athanor::integer_from_string: no digits");
  for (char c : digits) {
    const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                  : std::isalpha(static_cast<unsigned char>(c)) ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                                                                : 99;
    if (d >= base) {
      throw std::invalid_argument(
          fmt::format("athanor::integer_from_string: '{}' is not a base-{} digit in \"{}\"", c, base, text));
    }
  }
  if (digits.size() <= (base <= 10 ? 18u : base <= 16 ? 15u : 12u)) {  // fits int64 whatever the digits
    std::int64_t v = 0;
    for (char c : digits) {
      const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
      v = v * base + d;
    }
    return term(negative ? -v : v);
  }
  big b;
  const std::string s(digits);
  mpz_set_str(b.get(), s.c_str(), base);  // digits were checked above
  if (negative) mpz_neg(b.get(), b.get());
  return b.to_term();
}

std::string integer_to_string(const term& t, int base) {
  if (base < 2 || base > 36) throw std::invalid_argument(fmt::format("athanor::integer_to_string: base {}", base));
  if (!t.is_integer()) (void)t.as_int();  // throws bad_term_access, naming the kind
  big b(t);
  std::string out(mpz_sizeinbase(b.get(), base) + 2, '\0');
  mpz_get_str(out.data(), -base, b.get());  // negative base: upper-case letters
  out.resize(std::char_traits<char>::length(out.data()));
  return out;
}

term add(const term& a, const term& b) { return arith(a, b, op::add, "add"); }
term subtract(const term& a, const term& b) { return arith(a, b, op::subtract, "subtract"); }
term multiply(const term& a, const term& b) { return arith(a, b, op::multiply, "multiply"); }

}  // namespace athanor
