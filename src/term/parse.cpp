// Erlang term syntax reader: see athanor/term/parse.h.
//
// A recursive-descent parser over the bytes of the text (UTF-8). Recursion is bounded by
// parse_options::max_depth, so hostile nesting is an error, not a stack overflow.
#include "athanor/term/parse.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "athanor/term/integer.h"

namespace athanor {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Erlang's atom and variable characters (io_lib / erl_scan): Latin-1 letters count.
bool is_lower(std::int32_t c) { return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7); }
bool is_upper(std::int32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7); }
bool is_name_char(std::int32_t c) { return is_lower(c) || is_upper(c) || (c >= '0' && c <= '9') || c == '_' || c == '@'; }

void append_utf8(std::string& out, std::uint32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | c >> 6);
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | c >> 12);
    out += char(0x80 | (c >> 6 & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | c >> 18);
    out += char(0x80 | (c >> 12 & 0x3F));
    out += char(0x80 | (c >> 6 & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

// Collects the bits of a binary literal, most significant bit first.
class bit_writer {
 public:
  void bits(std::uint64_t value, unsigned count) {  // the low `count` bits of value (count <= 64)
    for (unsigned i = count; i-- > 0;) bit(unsigned(value >> i & 1));
  }
  void bit(unsigned b) {
    if (bit_count_ % 8 == 0) bytes_.push_back(std::byte(0));
    if (b) bytes_.back() |= std::byte(0x80 >> (bit_count_ % 8));
    ++bit_count_;
  }
  void byte(std::uint8_t b) {
    if (bit_count_ % 8 == 0) {
      bytes_.push_back(std::byte(b));
      bit_count_ += 8;
    } else {
      bits(b, 8);
    }
  }
  term take() const { return term::bitstring(bytes_, bit_count_); }

 private:
  std::vector<std::byte> bytes_;
  std::size_t bit_count_ = 0;
};

class parser {
 public:
  parser(std::string_view text, const parse_options& options) : text_(text), options_(options) {}

  term run() {
    skip_space();
    term t = value(0);
    skip_space();
    if (peek() == '.') {
      ++pos_;
      skip_space();
    }
    if (pos_ != text_.size()) fail(pos_, fmt::format("unexpected {} after the term", describe(pos_)));
    return t;
  }

 private:
  [[noreturn]] void fail(std::size_t at, std::string_view what) const {
    throw parse_error(fmt::format("parse_term: {} at offset {}", what, at), at);
  }

  // Names what is at `at`, for messages: "'x'", "the end".
  std::string describe(std::size_t at) const {
    if (at >= text_.size()) return "the end";
    const char c = text_[at];
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
      return fmt::format("byte {}", static_cast<unsigned char>(c));
    }
    return fmt::format("'{}'", c);
  }

  char peek(std::size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  bool at_end() const { return pos_ >= text_.size(); }

  void skip_space() {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        ++pos_;
      } else if (c == '%') {
        while (!at_end() && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  void expect(char c) {
    skip_space();
    if (peek() != c) fail(pos_, fmt::format("expected '{}', found {}", c, describe(pos_)));
    ++pos_;
  }
  bool accept(std::string_view s) {
    skip_space();
    if (text_.substr(pos_, s.size()) != s) return false;
    pos_ += s.size();
    return true;
  }

  // The code point at pos_, advancing past it; fails on bytes that are not UTF-8.
  std::int32_t code_point() {
    const std::size_t at = pos_;
    const std::int32_t c = detail::next_code_point(text_, pos_);
    if (c < 0) fail(at, "invalid UTF-8");
    return c;
  }

  term value(std::size_t depth) {
    if (depth >= options_.max_depth) {
      fail(pos_, fmt::format("nesting deeper than the limit of {} (parse_options::max_depth)", options_.max_depth));
    }
    skip_space();
    const std::size_t at = pos_;
    const char c = peek();
    if (is_digit(c) || c == '$') return number(false);
    if (c == '-' || c == '+') {
      ++pos_;
      skip_space();
      if (!is_digit(peek()) && peek() != '$') fail(pos_, fmt::format("expected a number after '{}'", c));
      return number(c == '-');
    }
    if (c == '\'') return term(make_atom(quoted('\''), at));
    if (c == '"') return string_list();
    if (c == '{') return tuple_(depth);
    if (c == '[') return list_(depth);
    if (c == '<' && peek(1) == '<') return binary_(depth);
    if (c == '<') return pid_();
    if (c == '#') return hash_(depth);
    if (at_end()) fail(at, "expected a term, found the end");
    std::size_t probe = pos_;
    const std::int32_t first = detail::next_code_point(text_, probe);
    if (is_lower(first)) {
      const std::string_view name = bare_name();
      if (name == "fun") return export_fun();
      return term(make_atom(std::string(name), at));
    }
    if (is_upper(first) || first == '_') fail(at, "a variable is not a term");
    fail(at, fmt::format("expected a term, found {}", describe(at)));
  }

  std::string_view bare_name() {
    const std::size_t start = pos_;
    while (!at_end()) {
      std::size_t probe = pos_;
      const std::int32_t c = detail::next_code_point(text_, probe);
      if (c < 0 || !is_name_char(c)) break;
      pos_ = probe;
    }
    return text_.substr(start, pos_ - start);
  }

  atom make_atom(const std::string& name, std::size_t at) {
    if (name.size() > atom::kMaxNameBytes) {
      fail(at, fmt::format("atom of {} bytes is longer than the limit of {}", name.size(), atom::kMaxNameBytes));
    }
    if (auto existing = atom::existing(name)) return *existing;
    if (options_.existing_atoms_only) fail(at, fmt::format("unknown atom '{}' (existing_atoms_only)", name.substr(0, 64)));
    try {
      return atom(name);
    } catch (const std::exception& e) {
      fail(at, e.what());
    }
  }

  // An atom, quoted or not (inside fun, #Fun, and as a term).
  atom any_atom() {
    skip_space();
    const std::size_t at = pos_;
    if (peek() == '\'') return make_atom(quoted('\''), at);
    std::size_t probe = pos_;
    if (!is_lower(detail::next_code_point(text_, probe))) fail(at, fmt::format("expected an atom, found {}", describe(at)));
    return make_atom(std::string(bare_name()), at);
  }

  // The text of a quoted atom or string starting at the quote, as UTF-8, escapes resolved.
  std::string quoted(char quote) {
    const std::size_t start = pos_;
    ++pos_;
    std::string out;
    for (;;) {
      if (at_end()) fail(start, quote == '"' ? "unterminated string" : "unterminated quoted atom");
      const char c = text_[pos_];
      if (c == quote) {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        append_utf8(out, escape());
      } else {
        append_utf8(out, std::uint32_t(code_point()));
      }
    }
  }

  // An escape sequence at pos_ (the backslash), as erl_scan reads them; returns the code point.
  std::uint32_t escape() {
    const std::size_t at = pos_;
    ++pos_;
    if (at_end()) fail(at, "unterminated escape");
    const char c = text_[pos_++];
    switch (c) {
      case 'b': return '\b';
      case 'd': return 0x7F;
      case 'e': return 0x1B;
      case 'f': return '\f';
      case 'n': return '\n';
      case 'r': return '\r';
      case 's': return ' ';
      case 't': return '\t';
      case 'v': return '\v';
      case '^': {
        if (at_end()) fail(at, "unterminated escape");
        return std::uint32_t(text_[pos_++]) & 0x1F;
      }
      case 'x': {
        std::uint32_t v = 0;
        auto hex = [&](char h) -> int {
          if (is_digit(h)) return h - '0';
          if (h >= 'a' && h <= 'f') return h - 'a' + 10;
          if (h >= 'A' && h <= 'F') return h - 'A' + 10;
          return -1;
        };
        if (peek() == '{') {
          ++pos_;
          int digits = 0;
          while (hex(peek()) >= 0) {
            v = v * 16 + std::uint32_t(hex(peek()));
            ++pos_;
            if (++digits > 6) fail(at, "\\x{...} escape too long");
          }
          if (digits == 0 || peek() != '}') fail(at, "bad \\x{...} escape");
          ++pos_;
        } else {
          if (hex(peek()) < 0 || hex(peek(1)) < 0) fail(at, "bad \\xHH escape");
          v = std::uint32_t(hex(peek()) * 16 + hex(peek(1)));
          pos_ += 2;
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) fail(at, "escape is not a Unicode code point");
        return v;
      }
      default:
        if (c >= '0' && c <= '7') {
          std::uint32_t v = std::uint32_t(c - '0');
          for (int i = 0; i < 2 && peek() >= '0' && peek() <= '7'; ++i) v = v * 8 + std::uint32_t(text_[pos_++] - '0');
          return v;
        }
        // Any other character stands for itself (\\, \', \", ...).
        --pos_;
        return std::uint32_t(code_point());
    }
  }

  // Digits of `base` with '_' between them (1_000), starting at pos_; returns them without '_'.
  std::string digits(int base) {
    const std::size_t start = pos_;
    std::string out;
    auto is_base_digit = [&](char c) {
      const int d = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'z') ? c - 'a' + 10 : (c >= 'A' && c <= 'Z') ? c - 'A' + 10 : 99;
      return d < base;
    };
    while (!at_end()) {
      const char c = text_[pos_];
      if (is_base_digit(c)) {
        out += c;
        ++pos_;
      } else if (c == '_' && !out.empty() && is_base_digit(peek(1))) {
        ++pos_;
      } else {
        break;
      }
    }
    if (out.empty()) fail(start, fmt::format("expected a base-{} digit, found {}", base, describe(start)));
    return out;
  }

  // A number after its sign: integer, Base#digits, $c or float.
  term number(bool negative) {
    const std::size_t at = pos_;
    if (peek() == '$') {
      ++pos_;
      if (at_end()) fail(at, "expected a character after '$'");
      const std::int64_t c = peek() == '\\' ? std::int64_t(escape()) : std::int64_t(code_point());
      return term(negative ? -c : c);
    }
    const std::string whole = digits(10);
    if (peek() == '#') {
      if (whole.size() > 2 || std::stoi(whole) < 2 || std::stoi(whole) > 36) fail(at, fmt::format("bad base {}", whole));
      ++pos_;
      const std::string value = digits(std::stoi(whole));
      return integer_from_string((negative ? "-" : "") + value, std::stoi(whole));
    }
    if (peek() == '.' && is_digit(peek(1))) {
      ++pos_;
      std::string text = (negative ? "-" : "") + whole + "." + digits(10);
      if (peek() == 'e' || peek() == 'E') {
        const std::size_t e = pos_;
        ++pos_;
        text += 'e';
        if (peek() == '-' || peek() == '+') text += text_[pos_++];
        if (!is_digit(peek())) fail(e, "expected the exponent's digits");
        text += digits(10);
      }
      double d = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
      if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(d)) {
        fail(at, fmt::format("float {} is out of range", text));
      }
      return term(d);
    }
    return integer_from_string((negative ? "-" : "") + whole, 10);
  }

  // "text" (and adjacent strings) as a list of code points.
  term string_list() {
    std::vector<term> chars;
    while (peek() == '"') {
      const std::string text = quoted('"');
      for (std::size_t p = 0; p < text.size();) chars.emplace_back(std::int64_t(detail::next_code_point(text, p)));
      skip_space();
    }
    return list(chars);
  }

  term tuple_(std::size_t depth) {
    ++pos_;
    std::vector<term> elements;
    if (accept("}")) return tuple(elements);
    for (;;) {
      elements.push_back(value(depth + 1));
      skip_space();
      if (accept("}")) return tuple(elements);
      if (peek() != ',') fail(pos_, fmt::format("expected ',' or '}}', found {}", describe(pos_)));
      ++pos_;
    }
  }

  term list_(std::size_t depth) {
    ++pos_;
    std::vector<term> elements;
    if (accept("]")) return term::nil();
    for (;;) {
      elements.push_back(value(depth + 1));
      skip_space();
      if (accept("]")) return list(elements);
      if (peek() == '|') {
        ++pos_;
        term tail = value(depth + 1);
        expect(']');
        return list(elements, std::move(tail));
      }
      if (peek() != ',') fail(pos_, fmt::format("expected ',', '|' or ']', found {}", describe(pos_)));
      ++pos_;
    }
  }

  // #{...}, #Ref<...>, #Port<...>, #Fun<...>.
  term hash_(std::size_t depth) {
    const std::size_t at = pos_;
    ++pos_;
    if (peek() == '{') return map_(depth);
    if (text_.substr(pos_, 4) == "Ref<") {
      pos_ += 4;
      std::vector<std::uint64_t> parts = numbers_until_gt(at, 2, 6);
      const std::uint32_t node = narrow(parts[0], 0xFFFFFFFFu, at, "node number");
      std::vector<std::uint32_t> words;
      for (std::size_t i = parts.size(); i-- > 1;) words.push_back(narrow(parts[i], 0xFFFFFFFFu, at, "reference word"));
      return term(ref::from_words(node, words));
    }
    if (text_.substr(pos_, 5) == "Port<") {
      pos_ += 5;
      std::vector<std::uint64_t> parts = numbers_until_gt(at, 2, 2);
      return term(port_id(narrow(parts[0], 0xFFFFFFFFu, at, "node number"), parts[1]));
    }
    if (text_.substr(pos_, 4) == "Fun<") {
      pos_ += 4;
      const atom module = any_atom();
      expect('.');
      skip_space();
      if (is_digit(peek())) fail(at, "a local fun (#Fun<Module.Index.Uniq>) cannot be written as a term");
      const atom function = any_atom();
      expect('.');
      skip_space();
      const std::uint64_t arity = plain_number(at);
      expect('>');
      if (arity > 255) fail(at, "fun arity above 255");
      return term::export_fun(module, function, std::uint32_t(arity));
    }
    fail(at, "expected #{, #Ref<, #Port< or #Fun< after '#'");
  }

  term map_(std::size_t depth) {
    ++pos_;
    std::vector<std::pair<term, term>> entries;
    if (accept("}")) return map(entries);
    for (;;) {
      term key = value(depth + 1);
      if (!accept("=>")) fail(pos_, fmt::format("expected '=>', found {}", describe(pos_)));
      term v = value(depth + 1);
      entries.emplace_back(std::move(key), std::move(v));
      skip_space();
      if (accept("}")) return map(entries);
      if (peek() != ',') fail(pos_, fmt::format("expected ',' or '}}', found {}", describe(pos_)));
      ++pos_;
    }
  }

  std::uint64_t plain_number(std::size_t at) {
    skip_space();
    const std::string d = digits(10);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(d.data(), d.data() + d.size(), v);
    if (ec != std::errc() || end != d.data() + d.size()) fail(at, fmt::format("number {} too large", d));
    return v;
  }

  std::uint32_t narrow(std::uint64_t v, std::uint64_t max, std::size_t at, const char* what) {
    if (v > max) fail(at, fmt::format("{} {} too large", what, v));
    return std::uint32_t(v);
  }

  // N1.N2...Nk> with min..max numbers.
  std::vector<std::uint64_t> numbers_until_gt(std::size_t at, std::size_t min, std::size_t max) {
    std::vector<std::uint64_t> parts{plain_number(at)};
    while (accept(".")) parts.push_back(plain_number(at));
    expect('>');
    if (parts.size() < min || parts.size() > max) fail(at, fmt::format("{} numbers between < and >", parts.size()));
    return parts;
  }

  term pid_() {
    const std::size_t at = pos_;
    ++pos_;
    std::vector<std::uint64_t> parts = numbers_until_gt(at, 3, 3);
    if (parts[0] > pid::kNodeMask || parts[1] > pid::kIndexMask || parts[2] > pid::kGenerationMask) {
      fail(at, "pid does not fit athanor::pid");
    }
    return term(pid(std::uint32_t(parts[0]), std::uint32_t(parts[1]), std::uint32_t(parts[2])));
  }

  // fun Module:Function/Arity (the "fun" has been read).
  term export_fun() {
    const std::size_t at = pos_;
    const atom module = any_atom();
    expect(':');
    const atom function = any_atom();
    expect('/');
    const std::uint64_t arity = plain_number(at);
    if (arity > 255) fail(at, "fun arity above 255");
    return term::export_fun(module, function, std::uint32_t(arity));
  }

  // <<Segment, ...>>: each segment Value[:Size][/Type-Type...].
  term binary_(std::size_t depth) {
    pos_ += 2;
    bit_writer out;
    if (accept(">>")) return out.take();
    for (;;) {
      segment(out, depth);
      if (accept(">>")) return out.take();
      expect(',');
    }
  }

  void segment(bit_writer& out, std::size_t depth) {
    skip_space();
    const std::size_t at = pos_;
    // The value: a number, a string, or a nested binary.
    enum { integer, floating, text, bits } value_kind;
    term number_value;
    std::string text_value;
    term bits_value;
    if (peek() == '"') {
      value_kind = text;
      while (peek() == '"') {
        text_value += quoted('"');
        skip_space();
      }
    } else if (peek() == '<' && peek(1) == '<') {
      if (depth + 1 >= options_.max_depth) fail(at, "nesting too deep");
      value_kind = bits;
      bits_value = binary_(depth + 1);
    } else {
      bool negative = false;
      if (peek() == '-' || peek() == '+') {
        negative = peek() == '-';
        ++pos_;
        skip_space();
      }
      if (!is_digit(peek()) && peek() != '$') fail(pos_, fmt::format("expected a binary segment, found {}", describe(pos_)));
      number_value = number(negative);
      value_kind = number_value.is_float() ? floating : integer;
    }
    skip_space();
    std::optional<std::uint64_t> size;
    if (peek() == ':') {
      ++pos_;
      size = plain_number(at);
    }
    bool utf8 = false, little = false, as_float = value_kind == floating;
    skip_space();
    if (peek() == '/') {
      ++pos_;
      for (;;) {
        skip_space();
        const std::size_t type_at = pos_;
        const std::string_view type = bare_name();
        if (type == "utf8") utf8 = true;
        else if (type == "little") little = true;
        else if (type == "float") as_float = true;
        else if (type == "binary" || type == "bytes" || type == "bits" || type == "bitstring") {
          if (value_kind != bits && value_kind != text) fail(type_at, fmt::format("a number is not a {}", type));
        } else if (type != "integer" && type != "big" && type != "signed" && type != "unsigned") {
          fail(type_at, fmt::format("unsupported binary segment type '{}'", type));
        }
        if (peek() != '-') break;
        ++pos_;
      }
    }
    if (value_kind == text) {
      if (size && !utf8) fail(at, "a string segment takes no size");
      for (std::size_t p = 0; p < text_value.size();) {
        const std::int32_t c = detail::next_code_point(text_value, p);
        if (utf8) {
          std::string encoded;
          append_utf8(encoded, std::uint32_t(c));
          for (char b : encoded) out.byte(std::uint8_t(b));
        } else {
          out.byte(std::uint8_t(c));  // one byte per character, as Erlang truncates
        }
      }
      return;
    }
    if (value_kind == bits) {
      const std::span<const std::byte> b = bits_value.bitstring_bytes();
      std::size_t n = bits_value.bit_size();
      if (size) {
        if (*size * 8 > n) fail(at, "binary segment size larger than the binary");
        n = std::size_t(*size) * 8;
      }
      for (std::size_t i = 0; i < n; ++i) out.bit(unsigned(std::to_integer<unsigned>(b[i / 8]) >> (7 - i % 8) & 1));
      return;
    }
    if (utf8) {
      if (!number_value.is_int64() || number_value.as_int() < 0 || number_value.as_int() > 0x10FFFF) {
        fail(at, "utf8 segment needs a code point");
      }
      std::string encoded;
      append_utf8(encoded, std::uint32_t(number_value.as_int()));
      for (char b : encoded) out.byte(std::uint8_t(b));
      return;
    }
    if (as_float) {
      const double d = number_value.is_float() ? number_value.as_double()
                                               : number_value.is_int64() ? double(number_value.as_int()) : 0.0;
      const std::uint64_t width = size.value_or(64);
      if (width != 64 && width != 32) fail(at, "a float segment is 32 or 64 bits");
      const std::uint64_t raw = width == 64 ? std::bit_cast<std::uint64_t>(d) : std::bit_cast<std::uint32_t>(float(d));
      emit(out, raw, unsigned(width), little);
      return;
    }
    if (!number_value.is_int64()) fail(at, "binary segment value beyond 64 bits");
    const std::uint64_t width = size.value_or(8);
    if (width > 64) fail(at, "binary segment wider than 64 bits");
    emit(out, std::uint64_t(number_value.as_int()), unsigned(width), little);
  }

  static void emit(bit_writer& out, std::uint64_t value, unsigned width, bool little) {
    if (width < 64) value &= (std::uint64_t(1) << width) - 1;
    if (little && width % 8 == 0) {
      for (unsigned i = 0; i < width / 8; ++i) out.byte(std::uint8_t(value >> (8 * i)));
    } else {
      out.bits(value, width);
    }
  }

  std::string_view text_;
  const parse_options& options_;
  std::size_t pos_ = 0;
};

}  // namespace

term parse_term(std::string_view text, const parse_options& options) { return parser(text, options).run(); }

}  // namespace athanor
