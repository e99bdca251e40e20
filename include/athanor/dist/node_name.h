// athanor::dist::node_name — the name of a distributed node, "alive@host", as Erlang spells it.
//
//   node_name me   = node_name::from_sname("cpp");         // cpp@vm, as `erl -sname cpp` on host vm
//   node_name peer = node_name::parse("a@vm");
//   node_name dc   = node_name::from_name("cpp@10.0.0.7");  // a long name, as `erl -name cpp@10.0.0.7`
//   same_naming_mode(me, peer);                               // true: both short names
//
// Two naming modes, as in Erlang. A short name's host has no dot (`erl -sname`); a long name's
// host is a fully qualified domain name or an IP literal (`erl -name`). A node of one mode
// refuses to talk to a node of the other (the OTP dialler prints "System (NOT) running to use
// fully qualified hostnames"), so a node's mode, read from its host, decides whom it can reach.
//
// Two strictness levels. Names this node takes for itself (parse, from_sname, from_name) are
// restricted to what every Erlang tool handles: the alive part is [A-Za-z0-9_-], the host is
// [A-Za-z0-9.:_-] (letters, digits, dots, colons for IPv6, '_' and '-'). Names peers send in the
// handshake (parse_peer) follow OTP's own rule (dist_util:is_node_name: exactly one '@', both
// parts non-empty), so a legitimate Erlang node named oddly is not turned away, plus what keeps
// logs and atoms sane: no control bytes, spaces or DEL. Either way a full name is at most 255
// bytes, Erlang's atom limit.
//
// Thread-safety: node_name is a plain value; const member functions may be called concurrently.
// The free functions share no state (this_host_* ask the operating system each time).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace athanor::dist {

// Thrown for a name that is not acceptable, and when a name cannot be made (a long name on a
// host without a domain). what() names the offending text and the rule it breaks.
class node_name_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class naming_mode : std::uint8_t {
  short_names,  // `erl -sname`: the host has no dot
  long_names,   // `erl -name`: the host is a fully qualified name or an IP literal
};

// The most bytes a full node name may have (an Erlang atom's limit).
inline constexpr std::size_t max_node_name_bytes = 255;

class node_name {
 public:
  // nonode@nohost, what Erlang calls a node that is not distributed.
  node_name() : node_name(std::string("nonode@nohost"), 6) {}

  // Parses a full name for this node's own use: exactly one '@', an alive part of
  // [A-Za-z0-9_-]+, a host of [A-Za-z0-9.:_-]+ without empty dot-separated labels, at most 255
  // bytes in all. Throws node_name_error otherwise.
  static node_name parse(std::string_view full);

  // Parses a name a peer sent (the handshake's send_name and challenge): OTP's rule (exactly
  // one '@', both parts non-empty), at most 255 bytes, and no byte below 0x21 or equal to 0x7F.
  // Throws node_name_error otherwise.
  static node_name parse_peer(std::string_view full);

  // What `--sname ARG` means, as `erl -sname ARG`: ARG alone is ARG@<this host's short name>
  // (this_host_short_name()); ARG@HOST is taken as given. The host must be a short-name host
  // (no dot). Throws node_name_error for a bad alive part or host.
  static node_name from_sname(std::string_view arg);
  // The same with this host's short name given (tests; hosts whose name is known otherwise).
  static node_name from_sname(std::string_view arg, std::string_view this_host);

  // What `--name ARG` means, as `erl -name ARG`: ARG alone is ARG@<this host's fully qualified
  // name> (this_host_fqdn()); ARG@HOST is taken as given. The host must be a long-name host
  // (a dotted name or an IP literal). When ARG has no host and this host has no domain name,
  // there is no fully qualified name to use: like `erl -name` ("Can't set long node name!"),
  // this throws node_name_error, saying to give the host explicitly (ARG@host.example.com or
  // ARG@<IP address>). It never falls back to a short or made-up host, which would give the
  // node a name no long-name node can reach.
  static node_name from_name(std::string_view arg);
  // The same with this host's fully qualified name given; nullopt: the host has none.
  static node_name from_name(std::string_view arg, std::optional<std::string_view> this_host_fqdn);

  // "alive@host", the bytes sent on the wire and compared by the handshake.
  const std::string& full() const noexcept { return full_; }
  std::string_view alive() const noexcept { return std::string_view(full_).substr(0, at_); }
  std::string_view host() const noexcept { return std::string_view(full_).substr(at_ + 1); }
  // The mode the host implies (see host_naming_mode).
  naming_mode mode() const noexcept;

  // Names compare as byte strings of their full form, as Erlang compares node atoms (the
  // simultaneous-connect rule depends on this order).
  friend bool operator==(const node_name& a, const node_name& b) noexcept { return a.full_ == b.full_; }
  friend std::strong_ordering operator<=>(const node_name& a, const node_name& b) noexcept {
    return a.full_.compare(b.full_) <=> 0;
  }

 private:
  node_name(std::string full, std::size_t at) : full_(std::move(full)), at_(at) {}

  std::string full_;
  std::size_t at_;  // index of the '@'
};

// long_names when `host` contains a dot or is an IPv6 literal (which has colons but may have no
// dot, e.g. ::1), short_names otherwise. This is the test OTP's dialler applies
// (inet_tcp_dist:splitnode): a short-name node refuses dotted hosts, a long-name node refuses
// hosts that are neither dotted nor an IP address.
naming_mode host_naming_mode(std::string_view host) noexcept;

// Whether two nodes can talk: both use short names or both use long names.
bool same_naming_mode(const node_name& a, const node_name& b) noexcept;

// This host's name up to its first dot (what `hostname -s` prints and `erl -sname` uses).
// Throws node_name_error if the operating system gives no host name.
std::string this_host_short_name();

// This host's fully qualified name: the host name if it already has a dot, else the canonical
// name the resolver gives for it (getaddrinfo with AI_CANONNAME, so /etc/hosts entries such as
// "127.0.1.1 vm.example.com vm" count) if that has a dot; nullopt when neither has a domain.
// Unlike erl it does not read a `domain` line of /etc/resolv.conf on its own.
std::optional<std::string> this_host_fqdn();

}  // namespace athanor::dist
