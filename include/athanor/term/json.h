// athanor::json — JSON to and from terms, with the conventions of Elixir's Jason and Phoenix,
// so that a map a Phoenix app would send as JSON is sent the same way from Athanor. Thread-safe:
// the functions share no state (beyond the thread-safe atom table, which decode never grows).
//
//   std::string text = json::encode(map({{"name"_a, "Alice"}, {"tags"_a, list({"a", "b"})}}));
//   // {"name":"Alice","tags":["a","b"]}
//   term t = json::decode(R"({"ok": true, "n": [1, 2.5, null]})");
//   // #{<<"n">> => [1,2.5,nil], <<"ok">> => true}
//
// Encoding: maps whose keys are atoms, binaries or integers -> objects (keys as text, in the
// map's key order); proper lists -> arrays (so an Erlang string "abc" is [97,98,99], as Jason
// does); binaries -> strings (they must be UTF-8); the atoms true, false and nil -> true,
// false, null; other atoms -> strings; integers of any size -> numbers; floats -> numbers in
// the shortest form that reads back as the same double. Anything else (tuples, pids, refs,
// ports, funs, bitstrings, improper lists, other map keys) has no JSON form: json_error.
//
// Decoding: objects -> maps with binary keys (a repeated key keeps its last value), arrays ->
// lists, strings -> binaries, integers -> integers of any size, other numbers -> floats,
// true/false -> the atoms true/false, null -> the atom nil. Input must be one JSON value
// (RFC 8259, UTF-8); anything else is a json_error with the offset.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include "athanor/term/term.h"

namespace athanor::json {

// Thrown by encode() for a term JSON cannot carry (what() names the term and why) and by
// decode() for text that is not JSON (what() gives the offset). Thread-safe to copy.
class json_error : public std::runtime_error {
 public:
  json_error(const std::string& message, std::size_t offset) : std::runtime_error(message), offset_(offset) {}
  // decode(): the byte offset where the problem was found; encode(): 0.
  std::size_t offset() const noexcept { return offset_; }

 private:
  std::size_t offset_;
};

// Most nested arrays and objects (maps and lists) either direction accepts.
inline constexpr std::size_t kMaxDepth = 1000;

// Returns the term as compact JSON text. Throws json_error (see the file comment) or
// std::bad_alloc.
std::string encode(const term& t);

// Returns the term the JSON text stands for. Throws json_error for anything but one JSON
// value (whitespace around it is fine), nesting deeper than kMaxDepth or a number that is
// not finite as a double; std::bad_alloc.
term decode(std::string_view text);

}  // namespace athanor::json
