// JSON <-> terms: see athanor/term/json.h.
//
// Decoding uses nlohmann/json's SAX parser, which is iterative (no recursion on nesting),
// validates UTF-8 and hands over the raw text of numbers too large for 64 bits, so terms are
// built directly without a DOM in between. Encoding is written here: nlohmann's writer
// cannot print integers beyond 64 bits, and writing straight into one string is simpler
// than converting terms to nlohmann values first.
#include "athanor/term/json.h"

#include <cmath>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "athanor/term/integer.h"

namespace athanor::json {
namespace {

// ---------------------------------------------------------------- encoding

[[noreturn]] void cannot(const term& t, std::string_view why) {
  std::string shown = t.to_string();
  if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
  throw json_error(fmt::format("json: cannot encode {}: {}", shown, why), 0);
}

void append_string(std::string& out, std::string_view text, const term& owner) {
  for (std::size_t pos = 0; pos < text.size();) {
    if (detail::next_code_point(text, pos) < 0) cannot(owner, "the binary is not UTF-8 text");
  }
  out += '"';
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_key(std::string& out, const term& key, const term& map) {
  switch (key.kind()) {
    case term_kind::atom: append_string(out, key.as_atom().name(), key); return;
    case term_kind::binary: append_string(out, key.as_binary(), key); return;
    case term_kind::integer:
    case term_kind::bignum: out += '"' + integer_to_string(key) + '"'; return;
    default: cannot(map, fmt::format("a JSON object key must be an atom, a binary or an integer, not a {}",
                                     kind_name(key.kind())));
  }
}

void append_value(std::string& out, const term& t, std::size_t depth) {
  if (depth > kMaxDepth) cannot(t, fmt::format("nested deeper than {}", kMaxDepth));
  switch (t.kind()) {
    case term_kind::integer:
      out += fmt::format_int(t.as_int()).c_str();
      return;
    case term_kind::bignum:
      out += integer_to_string(t);
      return;
    case term_kind::float_:
      out += t.to_string();  // Erlang's shortest form (1.0e10, 0.1) is valid JSON
      return;
    case term_kind::atom:
      if (t.is_atom(atoms::true_)) {
        out += "true";
      } else if (t.is_atom(atoms::false_)) {
        out += "false";
      } else if (t.is_atom(atoms::nil)) {
        out += "null";
      } else {
        append_string(out, t.as_atom().name(), t);
      }
      return;
    case term_kind::binary:
      append_string(out, t.as_binary(), t);
      return;
    case term_kind::nil:
      out += "[]";
      return;
    case term_kind::list: {
      out += '[';
      const term* cell = &t;
      for (bool first = true; cell->is_cons(); cell = &cell->tail(), first = false) {
        if (!first) out += ',';
        append_value(out, cell->head(), depth + 1);
      }
      if (!cell->is_nil()) cannot(t, "an improper list has no JSON form");
      out += ']';
      return;
    }
    case term_kind::map: {
      out += '{';
      bool first = true;
      for (const auto& [key, value] : t.map_entries()) {
        if (!first) out += ',';
        first = false;
        append_key(out, key, t);
        out += ':';
        append_value(out, value, depth + 1);
      }
      out += '}';
      return;
    }
    case term_kind::tuple: cannot(t, "JSON has no tuples (use a list or a map)");
    case term_kind::pid: cannot(t, "JSON has no pids");
    case term_kind::reference: cannot(t, "JSON has no references");
    case term_kind::port: cannot(t, "JSON has no ports");
    case term_kind::fun: cannot(t, "JSON has no funs");
    case term_kind::bitstring: cannot(t, "a bitstring is not text (not a whole number of bytes)");
  }
  cannot(t, "unknown kind");
}

// ---------------------------------------------------------------- decoding

// Builds terms from nlohmann's SAX events with an explicit stack (no recursion).
class builder : public nlohmann::json_sax<nlohmann::json> {
 public:
  term take() { return std::move(values_.back()); }

  bool null() override { return push(term(atoms::nil)); }
  bool boolean(bool v) override { return push(term(v)); }
  bool number_integer(number_integer_t v) override { return push(term(std::int64_t(v))); }
  bool number_unsigned(number_unsigned_t v) override { return push(term(std::uint64_t(v))); }
  bool number_float(number_float_t v, const string_t& text) override {
    // nlohmann reads integers beyond 64 bits as floats; keep them exact.
    if (text.find_first_of(".eE") == string_t::npos) return push(integer_from_string(text));
    if (!std::isfinite(v)) {
      error_ = fmt::format("json: number {} is out of range for a float", text.substr(0, 40));
      return false;
    }
    return push(term(v));
  }
  bool string(string_t& v) override { return push(term(std::string_view(v))); }
  bool binary(binary_t&) override { return false; }  // never sent for JSON text
  bool start_object(std::size_t) override { return open(true); }
  bool key(string_t& k) override { return push(term(std::string_view(k))); }
  bool end_object() override {
    const std::size_t start = frames_.back().start;
    std::vector<std::pair<term, term>> entries;
    entries.reserve((values_.size() - start) / 2);
    for (std::size_t i = start; i + 1 < values_.size(); i += 2) {
      entries.emplace_back(std::move(values_[i]), std::move(values_[i + 1]));
    }
    return close(map(entries));
  }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override {
    const std::size_t start = frames_.back().start;
    return close(list(std::span<const term>(values_.data() + start, values_.size() - start)));
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    // nlohmann's message names the position itself; keep its reason, state ours.
    std::string what = e.what();
    if (what.rfind("[json.exception.", 0) == 0) what = what.substr(what.find("] ") + 2);
    error_ = fmt::format("json: {}", what);
    error_offset_ = position > 0 ? position - 1 : 0;
    return false;
  }

  const std::string& error() const { return error_; }
  std::size_t error_offset() const { return error_offset_; }

 private:
  struct frame {
    bool object;
    std::size_t start;
  };
  bool push(term t) {
    values_.push_back(std::move(t));
    return true;
  }
  bool open(bool object) {
    if (frames_.size() >= kMaxDepth) {
      error_ = fmt::format("json: nested deeper than {}", kMaxDepth);
      return false;
    }
    frames_.push_back({object, values_.size()});
    return true;
  }
  bool close(term t) {
    values_.resize(frames_.back().start);
    frames_.pop_back();
    return push(std::move(t));
  }

  std::vector<term> values_;
  std::vector<frame> frames_;
  std::string error_;
  std::size_t error_offset_ = 0;
};

}  // namespace

std::string encode(const term& t) {
  std::string out;
  append_value(out, t, 0);
  return out;
}

term decode(std::string_view text) {
  builder b;
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text.begin(), text.end(), &b, nlohmann::json::input_format_t::json, true);
  } catch (const std::invalid_argument& e) {  // integer_from_string cannot fail on nlohmann's digits
    throw json_error(fmt::format("json: {}", e.what()), 0);
  }
  if (!ok) {
    throw json_error(b.error().empty() ? std::string("json: invalid input") : b.error(), b.error_offset());
  }
  return b.take();
}

}  // namespace athanor::json
