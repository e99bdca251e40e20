// athanor::atom — an interned name, as an Erlang atom. A plain 4-byte value: thread-safe to copy and compare.
//
// An atom is an index into one process-wide intern table, so equality is an
// integer comparison and an atom costs 4 bytes wherever it is stored. As in
// Erlang, atoms are never freed: the table only grows, up to kMaxAtoms. That is
// why atoms must not be made from untrusted input (use atom::existing() to look
// a name up without creating it).
//
//   using namespace athanor::literals;
//   athanor::atom reason = "shutdown"_a;
//   if (reason == athanor::atoms::shutdown) ...
//
// The well-known atoms in athanor::atoms are compile-time constants: the table
// is seeded with them, in the order of detail::kWellKnownAtomNames, the first
// time it is used, so they are valid even during static initialisation.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace athanor {

// athanor::atom_table_full — thrown when creating an atom would exceed atom::kMaxAtoms
// (Erlang's system_limit). Thread-safe to copy, like every exception.
class atom_table_full : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class atom;
class term;

namespace detail {

// The atoms every part of Athanor uses. The table is seeded with these names in
// this order, so the index of a name here is its atom's index. Append only.
inline constexpr std::string_view kWellKnownAtomNames[] = {
    "normal",   "kill",         "killed",      "noproc",       "shutdown", "timeout", "undefined", "ok",
    "error",    "EXIT",         "DOWN",        "process",      "noconnection", "badarg", "true",  "false",
    "nil",      "infinity",     "brutal_kill", "system_limit", "noreply",  "reply",   "stop",      "ignore",
    "nonode@nohost",
};

// Returns the index of a well-known atom; a name that is not well known fails to compile.
consteval std::uint32_t well_known_atom_index(std::string_view name) {
  for (std::uint32_t i = 0; i < std::size(kWellKnownAtomNames); ++i) {
    if (kWellKnownAtomNames[i] == name) return i;
  }
  throw "not a well-known atom: add it to detail::kWellKnownAtomNames";
}

// Returns the constant for a well-known atom (used to spell athanor::atoms).
consteval atom well_known_atom(std::string_view name);

// Decodes the UTF-8 code point that starts at text[pos] and advances pos past it.
// Returns the code point, or -1 (pos unchanged) if the bytes there are not valid UTF-8
// (truncated, overlong, a surrogate or above U+10FFFF). Shared by atom and term printing.
std::int32_t next_code_point(std::string_view text, std::size_t& pos) noexcept;

}  // namespace detail

class atom {
 public:
  // Longest name, in UTF-8 bytes. (Erlang allows 255 characters; Athanor counts bytes.)
  static constexpr std::size_t kMaxNameBytes = 255;
  // Most atoms a process can hold, as Erlang's default atom table limit.
  static constexpr std::uint32_t kMaxAtoms = 1u << 20;

  // The atom 'undefined', so that an atom field nobody set reads as Erlang's "no value".
  constexpr atom() noexcept : index_(detail::well_known_atom_index("undefined")) {}

  // Returns the atom named `name`, creating it if it does not exist yet. Thread-safe;
  // finding an existing atom takes no lock. Throws std::invalid_argument if `name` is
  // longer than kMaxNameBytes or is not valid UTF-8, and atom_table_full if a new atom
  // would exceed kMaxAtoms.
  explicit atom(std::string_view name);

  // Returns the atom named `name` if it already exists, or std::nullopt; never creates
  // one, so it is safe on untrusted input. Thread-safe and lock-free.
  static std::optional<atom> existing(std::string_view name) noexcept;

  // Returns how many atoms exist (the well-known ones included). Thread-safe.
  static std::size_t count() noexcept;

  // Returns the atom's name. The view stays valid for the life of the OS process.
  std::string_view name() const noexcept;

  // Returns the atom's position in the intern table: stable for the life of the OS
  // process, but not across processes (the distribution layer sends names, not indexes).
  constexpr std::uint32_t index() const noexcept { return index_; }

  // Returns the atom as Erlang prints it: quoted only when it must be ('EXIT', 'hello world', ok).
  std::string to_string() const;

  // Same atom; one integer comparison.
  friend constexpr bool operator==(atom, atom) noexcept = default;

  // Erlang orders atoms alphabetically by name (by code point, which is UTF-8 byte order),
  // not by when they were created, so this compares names unless the atoms are equal.
  friend std::strong_ordering operator<=>(atom a, atom b) noexcept;

 private:
  friend consteval atom detail::well_known_atom(std::string_view name);
  friend class term;  // a term stores an atom as its index
  constexpr explicit atom(std::uint32_t index) noexcept : index_(index) {}

  std::uint32_t index_;
};

consteval atom detail::well_known_atom(std::string_view name) { return atom(well_known_atom_index(name)); }

// Writes atom.to_string() to `out`; returns `out`.
std::ostream& operator<<(std::ostream& out, atom a);

// Compile-time constants for the well-known atoms. Names that are C++ keywords take a
// trailing underscore: atoms::true_ is 'true'. atoms::nil is the atom 'nil' (Elixir's
// nil), not the empty list (that is term::nil()).
namespace atoms {
inline constexpr atom normal = detail::well_known_atom("normal");
inline constexpr atom kill = detail::well_known_atom("kill");
inline constexpr atom killed = detail::well_known_atom("killed");
inline constexpr atom noproc = detail::well_known_atom("noproc");
inline constexpr atom shutdown = detail::well_known_atom("shutdown");
inline constexpr atom timeout = detail::well_known_atom("timeout");
inline constexpr atom undefined = detail::well_known_atom("undefined");
inline constexpr atom ok = detail::well_known_atom("ok");
inline constexpr atom error = detail::well_known_atom("error");
inline constexpr atom EXIT = detail::well_known_atom("EXIT");
inline constexpr atom DOWN = detail::well_known_atom("DOWN");
inline constexpr atom process = detail::well_known_atom("process");
inline constexpr atom noconnection = detail::well_known_atom("noconnection");
inline constexpr atom badarg = detail::well_known_atom("badarg");
inline constexpr atom true_ = detail::well_known_atom("true");
inline constexpr atom false_ = detail::well_known_atom("false");
inline constexpr atom nil = detail::well_known_atom("nil");
inline constexpr atom infinity = detail::well_known_atom("infinity");
inline constexpr atom brutal_kill = detail::well_known_atom("brutal_kill");
inline constexpr atom system_limit = detail::well_known_atom("system_limit");
inline constexpr atom noreply = detail::well_known_atom("noreply");
inline constexpr atom reply = detail::well_known_atom("reply");
inline constexpr atom stop = detail::well_known_atom("stop");
inline constexpr atom ignore = detail::well_known_atom("ignore");
// The node name of a node that is not distributed (what a plain erl calls itself).
inline constexpr atom nonode_at_nohost = detail::well_known_atom("nonode@nohost");
}  // namespace atoms

inline namespace literals {
// "ok"_a: returns atom("ok"); throws as atom's constructor does.
atom operator""_a(const char* name, std::size_t size);
}  // namespace literals

}  // namespace athanor

template <>
struct std::hash<athanor::atom> {
  std::size_t operator()(athanor::atom a) const noexcept { return std::hash<std::uint32_t>{}(a.index()); }
};

// Formats an atom as atom::to_string() does ("{}" only; width and fill apply).
template <>
struct fmt::formatter<athanor::atom> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(athanor::atom a, FormatContext& ctx) const {
    std::string text = a.to_string();
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text), ctx);
  }
};
