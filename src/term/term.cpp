#include "athanor/term/term.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <iterator>
#include <new>
#include <ostream>
#include <vector>

#include <fmt/format.h>
#include <gmp.h>

#include "term/internal.h"

namespace athanor {

static_assert(sizeof(mp_limb_t) == sizeof(std::uint64_t) && GMP_NAIL_BITS == 0,
              "bignum limbs are stored as 64-bit words and handed to GMP as they are");


using internals = detail::term_internals;

namespace {

// ---------------------------------------------------------------- comparison

// Orders the kinds as Erlang does: all numbers rank together, and so do all bitstrings.
int kind_rank(term_kind k) noexcept {
  if (k <= term_kind::float_) return 0;
  if (k == term_kind::bitstring) return int(term_kind::binary);
  return int(k);
}

// A read-only GMP view of a bignum's limbs (no copy; GMP never writes through it).
mpz_srcptr as_mpz(const term& t, mpz_t storage) noexcept {
  const detail::bignum_view v = internals::bignum_of(t);
  const mp_size_t n = mp_size_t(v.limbs.size());
  return mpz_roinit_n(storage, reinterpret_cast<const mp_limb_t*>(v.limbs.data()), v.negative ? -n : n);
}

// Compares two integers (either representation) by value. A bignum is outside int64, so
// against an in-place integer its sign decides.
std::strong_ordering compare_integers(const term& a, const term& b) noexcept {
  const bool a_big = a.is_bignum(), b_big = b.is_bignum();
  if (!a_big && !b_big) return internals::integer(a) <=> internals::integer(b);
  if (!b_big) return internals::bignum_of(a).negative ? std::strong_ordering::less : std::strong_ordering::greater;
  if (!a_big) return internals::bignum_of(b).negative ? std::strong_ordering::greater : std::strong_ordering::less;
  const detail::bignum_view x = internals::bignum_of(a), y = internals::bignum_of(b);
  if (x.negative != y.negative) return x.negative ? std::strong_ordering::less : std::strong_ordering::greater;
  std::strong_ordering magnitude = x.limbs.size() <=> y.limbs.size();
  for (std::size_t i = x.limbs.size(); magnitude == 0 && i-- > 0;) magnitude = x.limbs[i] <=> y.limbs[i];
  return x.negative ? 0 <=> magnitude : magnitude;
}

// Compares an integer with a finite float by exact value (no rounding of the integer,
// which a cast to double would do beyond 2^53).
std::strong_ordering compare_int_float(std::int64_t i, double d) noexcept {
  constexpr double kTwoTo63 = 9223372036854775808.0;
  if (d >= kTwoTo63) return std::strong_ordering::less;
  if (d < -kTwoTo63) return std::strong_ordering::greater;
  const double whole = std::trunc(d);  // now exactly representable as an int64
  const auto whole_int = static_cast<std::int64_t>(whole);
  if (i != whole_int) return i <=> whole_int;
  if (d > whole) return std::strong_ordering::less;
  if (d < whole) return std::strong_ordering::greater;
  return std::strong_ordering::equal;
}

// Compares bitstrings bit by bit (a prefix first), as Erlang does: <<1>> < <<1:1>>.
std::strong_ordering compare_bitstrings(const term& a, const term& b) noexcept {
  const std::string_view x = internals::binary_view(a), y = internals::binary_view(b);
  const std::size_t x_bits = internals::bit_count(a), y_bits = internals::bit_count(b);
  const std::size_t common = std::min(x_bits, y_bits);
  const std::size_t whole = common / 8;
  if (whole > 0) {
    if (int c = std::memcmp(x.data(), y.data(), whole); c != 0) return c <=> 0;
  }
  if (const unsigned rest = unsigned(common % 8); rest != 0) {
    const unsigned xb = static_cast<unsigned char>(x[whole]) >> (8 - rest);
    const unsigned yb = static_cast<unsigned char>(y[whole]) >> (8 - rest);
    if (xb != yb) return xb <=> yb;
  }
  return x_bits <=> y_bits;
}

// Orders funs: local funs before exported ones (as OTP 25 does); exported ones by module,
// function and arity; local ones by module, old index and old uniq, then by their encoding
// (which holds the captured variables), so the order is total and agrees with ==.
std::strong_ordering compare_funs(const term& a, const term& b) noexcept {
  const fun_info& x = internals::fun_of(a);
  const fun_info& y = internals::fun_of(b);
  if (x.exported != y.exported) return x.exported ? std::strong_ordering::greater : std::strong_ordering::less;
  if (x.module != y.module) return x.module <=> y.module;
  if (x.exported) {
    if (x.function != y.function) return x.function <=> y.function;
    return x.arity <=> y.arity;
  }
  if (x.old_index != y.old_index) return x.old_index <=> y.old_index;
  if (x.old_uniq != y.old_uniq) return x.old_uniq <=> y.old_uniq;
  const std::span<const std::byte> p = internals::fun_bytes(a), q = internals::fun_bytes(b);
  if (p.size() != q.size()) return p.size() <=> q.size();
  return std::memcmp(p.data(), q.data(), p.size()) <=> 0;
}

// How two terms are compared:
//  * erlang: Erlang's term order, a total preorder: numbers compare by value, so 1 and
//    1.0 are "equal" (such a tie is reported through `tie`, see compare());
//  * key: Erlang's map key order, the order of keys inside a map, a strong order: as
//    above, except that every integer comes before every float (#{2 => a} <
//    #{1.5 => a}) and -0.0 before 0.0;
//  * exact: =:=, and arithmetic: ==. In these only "equal" or "not equal" (reported
//    as less) matters.
enum class mode { erlang, key, exact, arithmetic };

constexpr bool is_ordering(mode m) { return m == mode::erlang || m == mode::key; }

// Compares an integer of either representation with a finite float by exact value.
std::strong_ordering compare_integer_float(const term& i, double d) noexcept {
  if (!i.is_bignum()) return compare_int_float(internals::integer(i), d);
  mpz_t storage;
  const int c = mpz_cmp_d(as_mpz(i, storage), d);  // exact: GMP does not round the integer
  return c < 0 ? std::strong_ordering::less : c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal;
}

template <mode M>
std::strong_ordering compare_numbers(const term& a, const term& b, bool& tie) noexcept {
  const bool a_int = a.is_integer(), b_int = b.is_integer();
  if (a_int && b_int) return compare_integers(a, b);
  if (!a_int && !b_int) {
    const double x = internals::floating(a), y = internals::floating(b);
    if (x < y) return std::strong_ordering::less;
    if (x > y) return std::strong_ordering::greater;
    // Equal values; only 0.0 and -0.0 can still differ.
    if (std::signbit(x) == std::signbit(y) || M == mode::arithmetic) return std::strong_ordering::equal;
    if (M == mode::erlang) {
      tie = true;
      return std::strong_ordering::equal;
    }
    return std::signbit(x) ? std::strong_ordering::less : std::strong_ordering::greater;
  }
  if (M == mode::exact) return std::strong_ordering::less;  // an integer is never =:= a float
  if (M == mode::key) return a_int ? std::strong_ordering::less : std::strong_ordering::greater;
  const std::strong_ordering by_value = a_int ? compare_integer_float(a, internals::floating(b))
                                              : 0 <=> compare_integer_float(b, internals::floating(a));
  if (by_value == 0 && M == mode::erlang) tie = true;
  return by_value;
}

// Compares in mode M. Sets `tie` (never clears it) if, in mode erlang, two numbers that
// are not exactly equal compared equal.
template <mode M>
std::strong_ordering compare_terms(const term* a, const term* b, bool& tie) noexcept {
  // Loops instead of recursing on the last thing compared (a list's tail, a tuple's last
  // element, a map's last value), so long lists compare in constant stack.
  for (;;) {
    const term_kind ka = internals::kind(*a), kb = internals::kind(*b);
    if (kind_rank(ka) != kind_rank(kb)) {
      return is_ordering(M) ? kind_rank(ka) <=> kind_rank(kb) : std::strong_ordering::less;
    }
    switch (ka) {
      case term_kind::integer:
      case term_kind::bignum:
      case term_kind::float_:
        return compare_numbers<M>(*a, *b, tie);
      case term_kind::atom:
        if (!is_ordering(M)) return internals::bits(*a) == internals::bits(*b) ? std::strong_ordering::equal
                                                                              : std::strong_ordering::less;
        return internals::atom_of(*a) <=> internals::atom_of(*b);
      case term_kind::reference:
        return internals::ref_of(*a) <=> internals::ref_of(*b);
      case term_kind::port:
        return port_id(internals::aux(*a), internals::bits(*a)) <=> port_id(internals::aux(*b), internals::bits(*b));
      case term_kind::pid:
        return pid::from_bits(internals::bits(*a)) <=> pid::from_bits(internals::bits(*b));
      case term_kind::fun:
        return compare_funs(*a, *b);
      case term_kind::nil:
        return std::strong_ordering::equal;
      case term_kind::binary:
      case term_kind::bitstring:
        return compare_bitstrings(*a, *b);
      default:
        break;
    }
    if (internals::box(*a) == internals::box(*b)) return std::strong_ordering::equal;  // shared: identical
    switch (ka) {
      case term_kind::tuple: {
        const std::span<const term> x = internals::tuple_view(*a), y = internals::tuple_view(*b);
        if (x.size() != y.size()) return x.size() <=> y.size();
        for (std::size_t i = 0; i + 1 < x.size(); ++i) {
          if (auto c = compare_terms<M>(&x[i], &y[i], tie); c != 0) return c;
        }
        a = &x.back(), b = &y.back();
        continue;
      }
      case term_kind::map: {
        const std::span<const internals::entry> x = internals::map_view(*a), y = internals::map_view(*b);
        if (x.size() != y.size()) return x.size() <=> y.size();
        // All keys first, then the values in key order. Keys compare in map key order,
        // and for equality always exactly: #{1 => a} == #{1.0 => a} is false in Erlang.
        constexpr mode kKeyMode = is_ordering(M) ? mode::key : mode::exact;
        for (std::size_t i = 0; i < x.size(); ++i) {
          if (auto c = compare_terms<kKeyMode>(&x[i].first, &y[i].first, tie); c != 0) return c;
        }
        for (std::size_t i = 0; i + 1 < x.size(); ++i) {
          if (auto c = compare_terms<M>(&x[i].second, &y[i].second, tie); c != 0) return c;
        }
        a = &x.back().second, b = &y.back().second;
        continue;
      }
      case term_kind::list: {
        const auto* x = internals::cell(*a);
        const auto* y = internals::cell(*b);
        if (auto c = compare_terms<M>(&x->head, &y->head, tie); c != 0) return c;
        a = &x->tail, b = &y->tail;
        continue;
      }
      default:
        return std::strong_ordering::equal;  // unreachable: every kind is handled above
    }
  }
}

// Erlang's map key order, in which a map keeps its keys.
std::strong_ordering compare_keys(const term& a, const term& b) noexcept {
  bool unused = false;
  return compare_terms<mode::key>(&a, &b, unused);
}

// ---------------------------------------------------------------- hashing

// Returns `h` with `value` mixed in (a combine step, then a multiply-xorshift so that
// small differences spread to every bit).
std::uint64_t mix(std::uint64_t h, std::uint64_t value) noexcept {
  h ^= value + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

// Returns a hash of the term that equal (=:=) terms share: it reads exactly what
// operator== compares. Like compare_terms, it loops along tails and last elements.
std::uint64_t hash_term(const term* t) noexcept {
  std::uint64_t h = 0;
  for (;;) {
    const term_kind k = internals::kind(*t);
    h = mix(h, std::uint64_t(k));
    switch (k) {
      case term_kind::integer:
      case term_kind::atom:
      case term_kind::pid:
        return mix(h, internals::bits(*t));
      case term_kind::port:
        return mix(mix(h, internals::aux(*t)), internals::bits(*t));
      case term_kind::bignum: {
        const detail::bignum_view v = internals::bignum_of(*t);
        h = mix(h, v.negative);
        for (std::uint64_t limb : v.limbs) h = mix(h, limb);
        return h;
      }
      case term_kind::fun: {
        const fun_info& f = internals::fun_of(*t);
        h = mix(mix(mix(h, f.module.index()), f.function.index()), f.arity);
        const std::span<const std::byte> e = internals::fun_bytes(*t);
        return mix(h, std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(e.data()), e.size())));
      }

      case term_kind::float_:
        return mix(h, std::bit_cast<std::uint64_t>(internals::floating(*t)));  // -0.0 =/= 0.0, so bits are fine
      case term_kind::reference:
        return mix(h, std::hash<ref>{}(internals::ref_of(*t)));
      case term_kind::nil:
        return h;
      case term_kind::bitstring:
        h = mix(h, internals::aux(*t));
        [[fallthrough]];
      case term_kind::binary:
        return mix(h, std::hash<std::string_view>{}(internals::binary_view(*t)));
      case term_kind::tuple: {
        const std::span<const term> e = internals::tuple_view(*t);
        h = mix(h, e.size());
        if (e.empty()) return h;
        for (std::size_t i = 0; i + 1 < e.size(); ++i) h = mix(h, hash_term(&e[i]));
        t = &e.back();
        continue;
      }
      case term_kind::map: {
        const std::span<const internals::entry> e = internals::map_view(*t);
        h = mix(h, e.size());
        if (e.empty()) return h;
        for (std::size_t i = 0; i < e.size(); ++i) h = mix(h, hash_term(&e[i].first));
        for (std::size_t i = 0; i + 1 < e.size(); ++i) h = mix(h, hash_term(&e[i].second));
        t = &e.back().second;
        continue;
      }
      case term_kind::list: {
        const auto* c = internals::cell(*t);
        h = mix(h, hash_term(&c->head));
        t = &c->tail;
        continue;
      }
    }
    return h;
  }
}

// ---------------------------------------------------------------- printing

// Appends a float as Erlang's ~w writes it (float_to_list(F, [short])): the shortest
// digits that read back as the same double, e.g. 1.0, 0.1, 100.0, 1.0e3, 1.0e-5,
// 1.2345678901234567e19. The choice between plain and scientific notation follows the
// BEAM's rules, matched against erl on several hundred thousand doubles:
//  * with one digit, plain from 1.0e-4 (0.0001) up to 1.0e2 (100.0);
//  * otherwise plain from 0.00ddd (two zeros after the point) up to one trailing
//    zero before the point (12340.0), or two (12345678900.0) once the value is 1.0e10
//    or more, which is when scientific form is no shorter;
//  * but a whole number beyond 2^53 (where doubles skip integers) is always scientific.
void append_float(std::string& out, double value) {
  if (std::signbit(value)) out += '-';
  value = std::fabs(value);
  if (value == 0.0) {
    out += "0.0";
    return;
  }
  // std::to_chars without a precision gives the shortest round-trip digits: "d.ddde±x".
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  (void)ec;  // 64 bytes is always enough for a double
  const std::string_view text(buffer, end - buffer);
  const std::size_t e = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e)) {
    if (c != '.') digits += c;
  }
  int scientific_exponent = 0;  // value = d.ddd * 10^scientific_exponent
  std::string_view exponent_text = text.substr(e + 1);
  if (exponent_text.front() == '+') exponent_text.remove_prefix(1);
  std::from_chars(exponent_text.data(), exponent_text.data() + exponent_text.size(), scientific_exponent);

  const int length = int(digits.size());
  const int exponent = scientific_exponent - length + 1;  // value = digits * 10^exponent
  const int lowest = length == 1 ? -4 : -(length + 2);
  const int highest = length == 1 || scientific_exponent >= 10 ? 2 : 1;
  bool plain = lowest <= exponent && exponent <= highest;
  if (plain && exponent >= 0) {
    const std::uint64_t whole = std::stoull(digits);
    plain = !((exponent == 0 && whole >= (1ull << 53)) || (exponent == 1 && whole > (1ull << 52) / 5) ||
              (exponent == 2 && whole > (1ull << 51) / 25));
  }
  if (!plain) {
    const std::string_view fraction = length == 1 ? std::string_view("0") : std::string_view(digits).substr(1);
    out.append(1, digits[0]).append(".").append(fraction);
    out.append("e").append(std::to_string(scientific_exponent));
  } else if (exponent >= 0) {
    out.append(digits).append(std::size_t(exponent), '0').append(".0");
  } else if (length + exponent > 0) {
    out.append(digits, 0, std::size_t(length + exponent)).append(".").append(digits, std::size_t(length + exponent));
  } else {
    out.append("0.").append(std::size_t(-(length + exponent)), '0').append(digits);
  }
}

// True if io_lib would print the code point inside a string with the Unicode
// printable range (io_lib:printable_unicode_list/1).
bool is_printable(std::int32_t c) noexcept {
  switch (c) {
    case '\n': case '\r': case '\t': case '\v': case '\b': case '\f': case 0x1B:
      return true;
    default:
      return (c >= 0x20 && c <= 0x7E) || (c >= 0xA0 && c < 0xD800) || (c > 0xDFFF && c < 0xFFFE) ||
             (c > 0xFFFF && c <= 0x10FFFF);
  }
}

// Appends a binary as Erlang's ~tp prints it (with +pc unicode): <<"text">> if it is
// printable ASCII, <<"text"/utf8>> if it is printable UTF-8 with other characters,
// otherwise its bytes <<1,2,3>>. (~w always prints bytes; a string is easier to read
// in an exit reason or a log line. Unlike ~tp, bytes that are not UTF-8 are never
// read as Latin-1 text.)
void append_binary(std::string& out, std::string_view bytes) {
  if (bytes.empty()) {
    out += "<<>>";
    return;
  }
  bool printable = true, ascii = true;
  for (std::size_t pos = 0; pos < bytes.size() && printable;) {
    const std::int32_t c = detail::next_code_point(bytes, pos);
    printable = is_printable(c);
    ascii = ascii && c < 0x80;
  }
  if (!printable) {
    out += "<<";
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      if (i > 0) out += ',';
      out += fmt::format_int(static_cast<unsigned char>(bytes[i])).c_str();
    }
    out += ">>";
    return;
  }
  out += "<<\"";
  for (char c : bytes) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\v': out += "\\v"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case 0x1B: out += "\\e"; break;
      default: out += c;
    }
  }
  out += ascii ? "\">>" : "\"/utf8>>";
}

// Writes terms in Erlang syntax, stopping with "..." once the text passes `limit` bytes
// (error messages quote the offending term without printing all of a huge one). Not
// thread-safe; each call of print_term uses its own.
// Appends an atom as ~w writes it: as atom::to_string(), but characters beyond Latin-1 as
// \x{HEX} (~w, unlike ~tw, writes only Latin-1 characters).
void append_atom_w(std::string& out, atom a) {
  const std::string text = a.to_string();
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t start = pos;
    const std::int32_t c = detail::next_code_point(text, pos);
    if (c > 0xFF) {
      fmt::format_to(std::back_inserter(out), "\\x{{{:X}}}", c);
    } else {
      out.append(text, start, pos - start);
    }
  }
}

// Appends a binary's bytes or a bitstring as <<1,2,3>> or <<5,1:3>>.
void append_bytes(std::string& out, std::string_view bytes, unsigned last_bits) {
  out += "<<";
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0) out += ',';
    const unsigned byte = static_cast<unsigned char>(bytes[i]);
    if (i + 1 == bytes.size() && last_bits != 0) {
      out += fmt::format_int(byte >> (8 - last_bits)).c_str();
      out += ':';
      out += fmt::format_int(last_bits).c_str();
    } else {
      out += fmt::format_int(byte).c_str();
    }
  }
  out += ">>";
}

void append_bignum(std::string& out, const term& t) {
  mpz_t storage;
  mpz_srcptr z = as_mpz(t, storage);
  const std::size_t start = out.size();
  out.resize(start + mpz_sizeinbase(z, 10) + 2);
  mpz_get_str(out.data() + start, 10, z);
  out.resize(start + std::strlen(out.data() + start));
}

class printer {
 public:
  printer(std::size_t limit, bool w) : limit_(limit), w_(w) {}

  void atom_(atom a) {
    if (w_) {
      append_atom_w(out_, a);
    } else {
      out_ += a.to_string();
    }
  }

  void print(const term& t) {
    if (full()) return;
    switch (t.kind()) {
      case term_kind::integer:
        out_ += fmt::format_int(internals::integer(t)).c_str();
        return;
      case term_kind::bignum:
        append_bignum(out_, t);
        return;
      case term_kind::float_:
        append_float(out_, internals::floating(t));
        return;
      case term_kind::atom:
        atom_(internals::atom_of(t));
        return;
      case term_kind::reference:
        out_ += internals::ref_of(t).to_string();
        return;
      case term_kind::fun: {
        const fun_info& f = internals::fun_of(t);
        if (f.exported) {
          out_ += "fun ";
          atom_(f.module);
          out_ += ':';
          atom_(f.function);
          out_ += '/';
          out_ += fmt::format_int(f.arity).c_str();
        } else {
          out_ += "#Fun<";
          atom_(f.module);
          fmt::format_to(std::back_inserter(out_), ".{}.{}>", f.old_index, f.old_uniq);
        }
        return;
      }
      case term_kind::port:
        out_ += port_id(internals::aux(t), internals::bits(t)).to_string();
        return;
      case term_kind::pid:
        out_ += pid::from_bits(internals::bits(t)).to_string();
        return;
      case term_kind::nil:
        out_ += "[]";
        return;
      case term_kind::binary:
        if (w_) {
          append_bytes(out_, internals::binary_view(t), 0);
        } else {
          append_binary(out_, internals::binary_view(t));
        }
        return;
      case term_kind::bitstring:
        append_bytes(out_, internals::binary_view(t), internals::aux(t));
        return;
      case term_kind::tuple: {
        out_ += '{';
        bool first = true;
        for (const term& e : internals::tuple_view(t)) {
          if (!first) out_ += ',';
          first = false;
          print(e);
          if (full()) return;
        }
        out_ += '}';
        return;
      }
      case term_kind::map: {
        out_ += "#{";
        bool first = true;
        for (const auto& [key, value] : internals::map_view(t)) {
          if (!first) out_ += ',';
          first = false;
          print(key);
          out_ += " => ";
          print(value);
          if (full()) return;
        }
        out_ += '}';
        return;
      }
      case term_kind::list: {
        out_ += '[';
        const term* cell = &t;
        for (;;) {
          print(internals::cell(*cell)->head);
          if (full()) return;
          const term& tail = internals::cell(*cell)->tail;
          if (tail.is_cons()) {
            out_ += ',';
            cell = &tail;
          } else {
            if (!tail.is_nil()) {
              out_ += '|';
              print(tail);
            }
            break;
          }
        }
        out_ += ']';
        return;
      }
    }
  }

  std::string take() && { return std::move(out_); }

 private:
  bool full() {
    if (truncated_) return true;
    if (out_.size() <= limit_) return false;
    out_ += "...";
    truncated_ = true;
    return true;
  }

  std::string out_;
  std::size_t limit_;
  bool w_;
  bool truncated_ = false;
};

std::string print_term(const term& t, std::size_t limit = std::numeric_limits<std::size_t>::max(), bool w = false) {
  printer p(limit, w);
  p.print(t);
  return std::move(p).take();
}

}  // namespace

// ---------------------------------------------------------------- construction

term::term(std::string_view bytes) : term(internals::make_binary(bytes.data(), bytes.size())) {}

term term::binary(std::span<const std::byte> bytes) { return internals::make_binary(bytes.data(), bytes.size()); }

term term::binary(std::initializer_list<std::uint8_t> bytes) {
  return internals::make_binary(bytes.begin(), bytes.size());
}

term term::bitstring(std::span<const std::byte> bytes, std::size_t bit_count) {
  if (bytes.size() != (bit_count + 7) / 8) {
    throw std::invalid_argument(fmt::format("athanor::term::bitstring: {} bits need {} bytes, got {}", bit_count,
                                            (bit_count + 7) / 8, bytes.size()));
  }
  return internals::make_bitstring(bytes.data(), bit_count);
}

term term::export_fun(atom module, atom function, std::uint32_t arity) {
  if (arity > 255) throw std::invalid_argument(fmt::format("athanor::term::export_fun: arity {} > 255", arity));
  fun_info info;
  info.exported = true;
  info.module = module;
  info.function = function;
  info.arity = arity;
  return internals::make_fun(info, {});
}

term term::from_large_unsigned(std::uint64_t value) { return internals::make_integer(false, {&value, 1}); }

term term::from_wide_ref(const ref& r) { return internals::make_wide_ref(r); }

ref term::boxed_ref() const noexcept { return static_cast<internals::ref_box*>(box_)->value; }

term detail::make_integer(bool negative, std::span<const std::uint64_t> limbs) {
  return internals::make_integer(negative, limbs);
}

detail::bignum_view detail::bignum_of(const term& t) noexcept { return internals::bignum_of(t); }

term detail::make_local_fun(const fun_info& info, std::span<const std::byte> encoding) {
  return internals::make_fun(info, encoding);
}

std::span<const std::byte> detail::fun_encoding(const term& t) noexcept { return internals::fun_bytes(t); }

term tuple(std::span<const term> elements) {
  return internals::make_tuple(elements.size(), [&](term* slot, std::size_t i) { ::new (slot) term(elements[i]); });
}

term detail::tuple_from_temporaries(term* elements, std::size_t size) {
  return internals::make_tuple(size, [&](term* slot, std::size_t i) { ::new (slot) term(std::move(elements[i])); });
}

term cons(term head, term tail) {
  auto* box = ::new (internals::allocate<internals::cons_box>(0)) internals::cons_box(std::move(head), std::move(tail));
  return internals::adopt(term_kind::list, box);
}

term list(std::span<const term> elements, term tail) {
  // Built back to front, as Erlang builds lists. If an allocation fails, `tail` frees the
  // cells made so far.
  for (std::size_t i = elements.size(); i-- > 0;) tail = cons(elements[i], std::move(tail));
  return tail;
}

term list(std::initializer_list<term> elements, term tail) {
  return list(std::span<const term>(elements.begin(), elements.size()), std::move(tail));
}

term map(std::span<const std::pair<term, term>> entries) {
  std::vector<internals::entry> sorted(entries.begin(), entries.end());
  return detail::map_from_temporaries(sorted);
}

term detail::map_from_temporaries(std::vector<std::pair<term, term>>& sorted) {
  bool in_order = true;  // strictly increasing keys: nothing to sort or drop
  for (std::size_t i = 1; i < sorted.size() && in_order; ++i) in_order = compare_keys(sorted[i - 1].first, sorted[i].first) < 0;
  if (in_order) return internals::make_map(sorted);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& x, const auto& y) { return compare_keys(x.first, y.first) < 0; });
  // Keep the last of each run of equal keys (the stable sort kept them in input order).
  std::size_t kept = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const bool last_of_run = i + 1 == sorted.size() || sorted[i].first != sorted[i + 1].first;
    if (last_of_run) sorted[kept++] = std::move(sorted[i]);
  }
  sorted.erase(sorted.begin() + std::ptrdiff_t(kept), sorted.end());
  return internals::make_map(sorted);
}

term map(std::initializer_list<std::pair<term, term>> entries) {
  return map(std::span<const std::pair<term, term>>(entries.begin(), entries.size()));
}

void term::free_block(term_kind k, std::uint8_t boxed, detail::term_box* counted) noexcept {
  if (boxed == 2) {
    detail::free_block_memory(counted);  // a shared block: its boxes hold nothing outside it
  } else {
    internals::free_box(k, counted);
  }
}

// ---------------------------------------------------------------- shared blocks

detail::shared_block::shared_block(std::size_t capacity) {
  if (capacity == 0) return;
  constexpr std::size_t kMax = (std::size_t(1) << 32) * 8;  // a box's distance, in words, fits 32 bits
  if (capacity > kMax - sizeof(term_box)) throw std::length_error("athanor::term: decoded term larger than 32 GiB");
  const std::size_t total = sizeof(term_box) + capacity;
  if (total >= kPooledBlockMinBytes) {  // a large message: from the block cache (memory.h)
    base_ = static_cast<char*>(pooled_allocate(total));
    ::new (base_) term_box;
    reinterpret_cast<term_box*>(base_)->size = kPooledBlockMark;
  } else {
    base_ = static_cast<char*>(::operator new(total));
    ::new (base_) term_box;
  }
  next_ = base_ + sizeof(term_box);
  end_ = next_ + capacity;
}

detail::shared_block::~shared_block() {
  if (base_ != nullptr) free_block_memory(reinterpret_cast<term_box*>(base_));
}

void detail::shared_block::commit() noexcept {
  // Nothing built (the root needs no block): nobody will free it, so do it now.
  if (base_ != nullptr && next_ == base_ + sizeof(term_box)) free_block_memory(reinterpret_cast<term_box*>(base_));
  base_ = nullptr;
}

void* detail::shared_block::take(std::size_t bytes) {
  if (bytes > std::size_t(end_ - next_) || bytes == 0) {
    throw std::logic_error("athanor::term: shared block sized too small (a bug in its caller's count)");
  }
  term_box* box = member_at(next_);
  next_ += bytes;
  return box;
}

detail::term_box* detail::shared_block::member_at(char* at) noexcept {
  auto* box = ::new (at) term_box;
  box->refs.store(std::uint32_t(std::size_t(at - base_) / 8), std::memory_order_relaxed);
  return box;
}

term detail::shared_block::adopt(term_kind k, term_box* box) noexcept { return internals::adopt_shared(k, box); }

term* detail::shared_block::tuple(term* slot, std::size_t arity) {
  if (arity > 0xFFFFFF) throw std::length_error("athanor::tuple: more than 16777215 elements (Erlang's limit)");
  auto* box = static_cast<term_box*>(take(tuple_bytes(arity)));
  box->size = std::uint32_t(arity);
  ::new (slot) term(adopt(term_kind::tuple, box));
  return internals::elements(box);
}

term* detail::shared_block::list(term* slot, std::size_t cells) {
  // Each cell's tail is the next cell, so the cells are consecutive: one take() for them all.
  auto* first = static_cast<cons_box*>(take(cells * cons_bytes));  // cells <= bytes left: no overflow
  cons_box* cell = first;
  for (std::size_t i = 1; i < cells; ++i, ++cell) {
    term_box* next = member_at(reinterpret_cast<char*>(cell + 1));
    ::new (&cell->tail) term(adopt(term_kind::list, next));
  }
  ::new (slot) term(adopt(term_kind::list, first));
  return &first->head;
}

std::pair<term, term>* detail::shared_block::map(term* slot, std::size_t entries) {
  if (entries > 0x7FFFFFFF) throw std::length_error("athanor::map: more than 2^31 - 1 entries");
  auto* box = static_cast<term_box*>(take(map_bytes(entries)));
  box->size = std::uint32_t(entries);
  ::new (slot) term(adopt(term_kind::map, box));
  return internals::entries(box);
}

void detail::shared_block::bits(term* slot, const std::byte* data, std::size_t size, unsigned bits_in_last_byte) {
  auto* box = static_cast<binary_box*>(take(binary_bytes(size)));
  box->byte_count = size;
  box->data = internals::bytes(box);
  box->owner = nullptr;
  std::memcpy(internals::bytes(box), data, size);
  if (bits_in_last_byte == 0 || bits_in_last_byte == 8) {
    ::new (slot) term(adopt(term_kind::binary, box));
    return;
  }
  char& last = internals::bytes(box)[size - 1];
  last = char(static_cast<unsigned char>(last) & (0xFF00u >> bits_in_last_byte));
  ::new (slot) term(internals::adopt_shared(term_kind::bitstring, box, bits_in_last_byte));
}

void detail::shared_block::integer(term* slot, bool negative, std::span<const std::uint64_t> limbs) {
  ::new (slot) term(internals::build_integer(negative, limbs, [this](std::size_t bytes) {
    return adopt(term_kind::bignum, static_cast<term_box*>(take(bytes)));
  }));
}

void detail::shared_block::reference(term* slot, const ref& r) {
  if (r.is_compact()) {
    ::new (slot) term(r);
    return;
  }
  auto* box = static_cast<ref_box*>(take(ref_bytes));
  ::new (&box->value) ref(r);
  ::new (slot) term(adopt(term_kind::reference, box));
}

void detail::shared_block::fun(term* slot, const fun_info& info, std::span<const std::byte> encoding) {
  if (encoding.size() > 0xFFFFFFFFu) throw std::length_error("athanor::term: fun too large");
  auto* box = static_cast<fun_box*>(take(fun_bytes(encoding.size())));
  box->size = std::uint32_t(encoding.size());
  ::new (&box->info) fun_info(info);
  if (!encoding.empty()) std::memcpy(static_cast<void*>(box + 1), encoding.data(), encoding.size());
  ::new (slot) term(adopt(term_kind::fun, box));
}

term term::unshared() const {
  using internals = detail::term_internals;
  using block_type = detail::shared_block;
  // First pass: the room every box takes (explicit stack: no recursion).
  std::size_t bytes = 0;
  std::vector<const term*> todo{this};
  while (!todo.empty()) {
    const term& t = *todo.back();
    todo.pop_back();
    if (!t.holds_box()) continue;
    switch (t.kind_) {
      case kind::tuple:
        bytes += block_type::tuple_bytes(t.box_->size);
        for (const term& e : internals::tuple_view(t)) todo.push_back(&e);
        break;
      case kind::map:
        bytes += block_type::map_bytes(t.box_->size);
        for (const auto& [k, v] : internals::map_view(t)) todo.push_back(&k), todo.push_back(&v);
        break;
      case kind::list: {
        const term* cell = &t;
        for (; cell->kind_ == kind::list; cell = &internals::cell(*cell)->tail) {
          bytes += block_type::cons_bytes;
          todo.push_back(&internals::cell(*cell)->head);
        }
        todo.push_back(cell);
        break;
      }
      case kind::binary:
      case kind::bitstring: bytes += block_type::binary_bytes(internals::binary_view(t).size()); break;
      case kind::bignum: bytes += block_type::bignum_bytes(t.box_->size); break;
      case kind::reference: bytes += block_type::ref_bytes; break;
      case kind::fun: bytes += block_type::fun_bytes(internals::fun_bytes(t).size()); break;
      default: break;
    }
  }
  // Second pass: built top-down into the block, as the ETF decoder does. A frame walks a
  // container's slots in the source and the copy side by side; a list's heads lie one cell
  // apart (in the source, its cells are wherever they are), the tail next to the last head.
  block_type block(bytes);
  struct frame {
    const term* from;
    term* to;
    std::size_t remaining;
    bool list;
  };
  std::vector<frame> frames;
  auto copy = [&](const term& from, term* to) {
    if (!from.holds_box()) {
      ::new (to) term(from);  // in place: nothing to share
      return;
    }
    switch (from.kind_) {
      case kind::tuple: {
        term* elements = block.tuple(to, from.box_->size);
        frames.push_back({internals::elements(from.box_), elements, from.box_->size, false});
        return;
      }
      case kind::map: {
        std::pair<term, term>* entries = block.map(to, from.box_->size);
        frames.push_back({&internals::entries(from.box_)->first, &entries->first, std::size_t(from.box_->size) * 2, false});
        return;
      }
      case kind::list: {
        std::size_t cells = 0;
        for (const term* c = &from; c->kind_ == kind::list; c = &internals::cell(*c)->tail) ++cells;
        term* head = block.list(to, cells);
        frames.push_back({&internals::cell(from)->head, head, cells + 1, true});
        return;
      }
      case kind::binary:
      case kind::bitstring: {
        const std::string_view b = internals::binary_view(from);
        block.bits(to, reinterpret_cast<const std::byte*>(b.data()), b.size(), from.kind_ == kind::bitstring ? from.aux_ : 0);
        return;
      }
      case kind::bignum: {
        const detail::bignum_view v = internals::bignum_of(from);
        block.integer(to, v.negative, v.limbs);
        return;
      }
      case kind::reference: block.reference(to, internals::ref_of(from)); return;
      case kind::fun: block.fun(to, internals::fun_of(from), internals::fun_bytes(from)); return;
      default: ::new (to) term(from); return;
    }
  };
  alignas(term) std::byte root_storage[sizeof(term)];  // never destroyed: see the ETF decoder
  term* const root = reinterpret_cast<term*>(root_storage);
  copy(*this, root);
  while (!frames.empty()) {
    frame& f = frames.back();
    if (f.remaining == 0) {
      frames.pop_back();
      continue;
    }
    const term* from = f.from;
    term* to = f.to;
    --f.remaining;
    if (!f.list) {
      f.from = from + 1, f.to = to + 1;
    } else if (f.remaining == 0) {
      // That was the tail: the frame is done (and there is no next cell to look at).
    } else if (f.remaining == 1) {
      f.from = from + 1, f.to = block_type::tail_of(to);  // the last cell's tail: next to its head
    } else {
      f.from = &internals::cell(from[1])->head, f.to = block_type::next_head(to);
    }
    copy(*from, to);  // may add a frame: `f` is not used after this
  }
  block.commit();
  return std::move(*root);
}

bool detail::sort_map_entries(std::pair<term, term>* entries, std::size_t n) {
  bool in_order = true;
  for (std::size_t i = 1; i < n && in_order; ++i) in_order = compare_keys(entries[i - 1].first, entries[i].first) < 0;
  if (in_order) return true;
  // Swaps only (moves that leave no live value behind): a shared block's terms keep no count
  // of their own, so none may be destroyed.
  std::sort(entries, entries + n, [](const auto& x, const auto& y) { return compare_keys(x.first, y.first) < 0; });
  for (std::size_t i = 1; i < n; ++i) {
    if (compare_keys(entries[i - 1].first, entries[i].first) == 0) return false;
  }
  return true;
}

void term::throw_not_int64() const {
  if (is_bignum()) {
    throw std::out_of_range(
        fmt::format("athanor::term::as_int: the integer {} does not fit in 64 signed bits", print_term(*this, 80)));
  }
  throw_wrong_kind("as_int", kind::integer);
}

void term::throw_not_finite() {
  throw std::invalid_argument("athanor::term: a float must be finite (Erlang has no NaN or infinity)");
}

void term::throw_wrong_kind(const char* function, term_kind expected) const {
  throw bad_term_access(fmt::format("athanor::term::{}: expected {}, got {} {}", function, kind_name(expected),
                                    kind_name(kind_), print_term(*this, 80)));
}

// ---------------------------------------------------------------- reading

std::string_view term::as_binary() const {
  if (!is_binary()) throw_wrong_kind("as_binary", kind::binary);
  return internals::binary_view(*this);
}

std::span<const std::byte> term::bitstring_bytes() const {
  if (!is_bitstring()) throw_wrong_kind("bitstring_bytes", kind::bitstring);
  return std::as_bytes(std::span<const char>(internals::binary_view(*this)));
}

std::size_t term::bit_size() const {
  if (!is_bitstring()) throw_wrong_kind("bit_size", kind::bitstring);
  return internals::bit_count(*this);
}

term term::sub_binary(std::size_t offset, std::size_t size) const {
  if (!is_binary()) throw_wrong_kind("sub_binary", kind::binary);
  const std::size_t total = internals::binary_view(*this).size();
  if (offset > total || size > total - offset) {
    throw std::out_of_range(
        fmt::format("athanor::term::sub_binary: {} bytes at offset {} of a binary of {} bytes", size, offset, total));
  }
  return internals::make_sub_binary(*this, offset, size);
}

fun_info term::as_fun() const {
  if (!is_fun()) throw_wrong_kind("as_fun", kind::fun);
  return internals::fun_of(*this);
}

std::span<const std::byte> term::as_bytes() const {
  if (!is_binary()) throw_wrong_kind("as_bytes", kind::binary);
  return std::as_bytes(std::span<const char>(internals::binary_view(*this)));
}

std::size_t term::tuple_size() const {
  if (!is_tuple()) throw_wrong_kind("tuple_size", kind::tuple);
  return box_ == nullptr ? 0 : box_->size;
}

const term& term::element(std::size_t i) const {
  const std::span<const term> elements = tuple_elements();
  if (i >= elements.size()) {
    throw std::out_of_range(fmt::format("athanor::term::element: index {} (0-based) of a tuple of size {}", i,
                                        elements.size()));
  }
  return elements[i];
}

std::span<const term> term::tuple_elements() const {
  if (!is_tuple()) throw_wrong_kind("tuple_elements", kind::tuple);
  return internals::tuple_view(*this);
}

const term& term::head() const {
  if (!is_cons()) throw_wrong_kind("head", kind::list);
  return internals::cell(*this)->head;
}

const term& term::tail() const {
  if (!is_cons()) throw_wrong_kind("tail", kind::list);
  return internals::cell(*this)->tail;
}

std::size_t term::length() const {
  if (!is_list()) throw_wrong_kind("length", kind::list);
  std::size_t n = 0;
  const term* t = this;
  for (; t->is_cons(); t = &internals::cell(*t)->tail) ++n;
  if (!t->is_nil()) {
    throw bad_term_access(fmt::format("athanor::term::length: not a proper list: {}", print_term(*this, 80)));
  }
  return n;
}

term::list_view::iterator term::list_view::begin() const {
  return iterator(list_.is_cons() ? internals::box(list_) : nullptr);
}

const term& term::list_view::iterator::operator*() const {
  return static_cast<const internals::cons_box*>(cell_)->head;
}

term::list_view::iterator& term::list_view::iterator::operator++() {
  const term& tail = static_cast<const internals::cons_box*>(cell_)->tail;
  if (tail.is_cons()) {
    cell_ = internals::box(tail);
  } else if (tail.is_nil()) {
    cell_ = nullptr;
  } else {
    throw bad_term_access(
        fmt::format("athanor::term::list_elements: improper list, ends in {}", print_term(tail, 80)));
  }
  return *this;
}

std::size_t term::map_size() const {
  if (!is_map()) throw_wrong_kind("map_size", kind::map);
  return box_ == nullptr ? 0 : box_->size;
}

const term* term::find(const term& key) const {
  const std::span<const std::pair<term, term>> entries = map_entries();
  auto it = std::lower_bound(entries.begin(), entries.end(), key,
                             [](const auto& entry, const term& k) { return compare_keys(entry.first, k) < 0; });
  if (it == entries.end() || it->first != key) return nullptr;
  return &it->second;
}

std::span<const std::pair<term, term>> term::map_entries() const {
  if (!is_map()) throw_wrong_kind("map_entries", kind::map);
  return internals::map_view(*this);
}

// ---------------------------------------------------------------- comparing, hashing, printing

std::strong_ordering compare(const term& a, const term& b) noexcept {
  // Erlang's order decides, and only terms it calls equal that are not exactly equal
  // (they differ only in 1 vs 1.0 or 0.0 vs -0.0 somewhere) are ordered by map key
  // order. Breaking such ties element by element instead would contradict Erlang:
  // [0, 1] > [0.0 | {}] because [1] > {}, whatever 0 vs 0.0 says.
  bool tie = false;
  const std::strong_ordering erlang = compare_terms<mode::erlang>(&a, &b, tie);
  if (erlang != 0 || !tie) return erlang;
  return compare_keys(a, b);
}

bool operator==(const term& a, const term& b) noexcept {
  bool unused = false;
  return compare_terms<mode::exact>(&a, &b, unused) == 0;
}

std::strong_ordering operator<=>(const term& a, const term& b) noexcept { return compare(a, b); }

bool equal(const term& a, const term& b) noexcept {
  bool unused = false;
  return compare_terms<mode::arithmetic>(&a, &b, unused) == 0;
}

std::string term::to_string() const { return print_term(*this); }

std::string term::to_string_w() const { return print_term(*this, std::numeric_limits<std::size_t>::max(), true); }

std::ostream& operator<<(std::ostream& out, const term& t) { return out << t.to_string(); }

std::string_view kind_name(term_kind k) noexcept {
  switch (k) {
    case term_kind::integer: return "integer";
    case term_kind::bignum: return "bignum";
    case term_kind::float_: return "float";
    case term_kind::atom: return "atom";
    case term_kind::reference: return "reference";
    case term_kind::fun: return "fun";
    case term_kind::port: return "port";
    case term_kind::pid: return "pid";
    case term_kind::tuple: return "tuple";
    case term_kind::map: return "map";
    case term_kind::nil: return "nil";
    case term_kind::list: return "list";
    case term_kind::binary: return "binary";
    case term_kind::bitstring: return "bitstring";
  }
  return "unknown";
}

}  // namespace athanor

std::size_t std::hash<athanor::term>::operator()(const athanor::term& t) const noexcept {
  return athanor::hash_term(&t);
}
