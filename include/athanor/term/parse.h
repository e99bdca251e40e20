// athanor::parse_term — reads a term written in Erlang syntax: what io:format("~w") and "~p"
// print, what term::to_string() prints, and what people type in a shell or a config file.
// Thread-safe: parsing shares no state (beyond the thread-safe atom table).
//
//   term t = parse_term("{ok, [1, 2 | T]}");                     // throws: T is a variable
//   term m = parse_term("#{name => <<\"Alice\">>, age => 42}.");   // the final '.' is optional
//   term b = parse_term("[16#FF, $a, 1.0e10, \"hi\", <<5, 1:3>>, <0.42.0>, #Ref<0.0.0.1>]");
//
// The syntax: integers (-42, 16#FF, 2#1010, $a, $\n, 1_000_000, any size), floats (1.0,
// -2.5e-3, 1.0E10), atoms (ok, 'hello world', with the escapes of quoted atoms), strings
// ("text", adjacent ones joined, as lists of code points: the source is UTF-8), binaries
// (<<1,2,3>>, <<"text">> (one byte per character), <<"text"/utf8>>, <<5,1:3>>, segments
// Value[:Size][/Types] with integer, float, binary, bits, utf8, big, little, signed, unsigned),
// tuples, lists with tails ([H | T]), maps (#{K => V}), pids (<0.1.0>), references
// (#Ref<0.1.2.3>, 1 to 5 words after the node), ports (#Port<0.5>) and exported funs
// (fun lists:map/2, or #Fun<lists.map.2> as OTP 22 printed them). Whitespace and %
// comments are skipped. Node numbers in pids, references and ports are Athanor's (0 = this
// node), as term::to_string() prints them. Not accepted: variables, expressions (1 + 2),
// records and local funs (#Fun<erl_eval.43.3316493> names code, not a value).
//
// For every term t that is not a local fun, parse_term(t.to_string()) == t and
// parse_term(t.to_string_w()) == t.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include "athanor/term/term.h"

namespace athanor {

// Thrown by parse_term for text that is not one term in Erlang syntax. what() says what and
// where, e.g. "parse_term: expected ',' or '}' at offset 7, found 'x'". Thread-safe to copy.
class parse_error : public std::runtime_error {
 public:
  parse_error(const std::string& message, std::size_t offset) : std::runtime_error(message), offset_(offset) {}
  // The byte offset in the text where the problem was found.
  std::size_t offset() const noexcept { return offset_; }

 private:
  std::size_t offset_;
};

struct parse_options {
  // Never create an atom: an atom that does not exist yet is a parse_error (for untrusted
  // text, as etf::decode_options::safe; atoms are never freed).
  bool existing_atoms_only = false;
  // Most nested tuples, lists, maps and binaries (the parser recurses once per level).
  std::size_t max_depth = 1000;
};

// Returns the one term written in `text` (surrounding whitespace and one final '.' allowed).
// Throws parse_error for anything else (see the file comment), std::bad_alloc.
term parse_term(std::string_view text, const parse_options& options = {});

}  // namespace athanor
