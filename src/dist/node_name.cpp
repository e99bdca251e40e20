// Node names: parsing, the two strictness levels, and what --sname / --name mean on this host.
// Error messages quote the offending name: a node name is public (epmd lists it to anyone).
#include "athanor/dist/node_name.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace athanor::dist {

namespace {

bool is_alive_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool is_host_char(char c) noexcept { return is_alive_char(c) || c == '.' || c == ':'; }

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// The alive part of a name this node takes for itself.
void check_own_alive(std::string_view alive, std::string_view full) {
  if (alive.empty()) throw node_name_error("node name " + quoted(full) + ": the part before '@' is empty");
  for (char c : alive)
    if (!is_alive_char(c))
      throw node_name_error("node name " + quoted(full) + ": the part before '@' may only hold letters, digits, '_' and '-'");
}

// The host part of a name this node takes for itself.
void check_own_host(std::string_view host, std::string_view full) {
  if (host.empty()) throw node_name_error("node name " + quoted(full) + ": the host after '@' is empty");
  for (char c : host)
    if (!is_host_char(c))
      throw node_name_error("node name " + quoted(full) +
                            ": the host may only hold letters, digits, '.', ':', '_' and '-'");
  // A dotted host needs non-empty labels ("a..b", ".a", "a." resolve nowhere); IPv6 literals
  // ("::1") have no dots and are not held to this.
  if (host.find('.') != std::string_view::npos &&
      (host.front() == '.' || host.back() == '.' || host.find("..") != std::string_view::npos))
    throw node_name_error("node name " + quoted(full) + ": the host has an empty label between dots");
}

// Splits at the one '@'; throws unless there is exactly one.
std::size_t split_at(std::string_view full) {
  std::size_t at = full.find('@');
  if (at == std::string_view::npos) throw node_name_error("node name " + quoted(full) + " has no '@' (expected alive@host)");
  if (full.find('@', at + 1) != std::string_view::npos)
    throw node_name_error("node name " + quoted(full) + " has more than one '@'");
  return at;
}

void check_length(std::string_view full) {
  if (full.size() > max_node_name_bytes)
    throw node_name_error("node name of " + std::to_string(full.size()) + " bytes: at most " +
                          std::to_string(max_node_name_bytes) + " are allowed");
}

bool is_ipv6_literal(std::string_view host) noexcept {
  if (host.find(':') == std::string_view::npos || host.size() >= INET6_ADDRSTRLEN) return false;
  char z[INET6_ADDRSTRLEN] = {};
  std::memcpy(z, host.data(), host.size());
  in6_addr a;
  return inet_pton(AF_INET6, z, &a) == 1;
}

}  // namespace

naming_mode host_naming_mode(std::string_view host) noexcept {
  if (host.find('.') != std::string_view::npos) return naming_mode::long_names;
  return is_ipv6_literal(host) ? naming_mode::long_names : naming_mode::short_names;
}

naming_mode node_name::mode() const noexcept { return host_naming_mode(host()); }

bool same_naming_mode(const node_name& a, const node_name& b) noexcept { return a.mode() == b.mode(); }

node_name node_name::parse(std::string_view full) {
  check_length(full);
  std::size_t at = split_at(full);
  check_own_alive(full.substr(0, at), full);
  check_own_host(full.substr(at + 1), full);
  return node_name(std::string(full), at);
}

node_name node_name::parse_peer(std::string_view full) {
  // The message quotes at most a prefix: the text comes from an unauthenticated peer.
  auto shown = [&] { return quoted(full.substr(0, 64)) + (full.size() > 64 ? "..." : ""); };
  if (full.size() > max_node_name_bytes)
    throw node_name_error("peer node name of " + std::to_string(full.size()) + " bytes: at most " +
                          std::to_string(max_node_name_bytes) + " are allowed");
  for (unsigned char c : full)
    if (c <= 0x20 || c == 0x7F) throw node_name_error("peer node name holds a control byte or a space");
  std::size_t at = full.find('@');
  if (at == std::string_view::npos || full.find('@', at + 1) != std::string_view::npos)
    throw node_name_error("peer node name " + shown() + " does not have exactly one '@'");
  if (at == 0 || at + 1 == full.size())
    throw node_name_error("peer node name " + shown() + " has an empty part around '@'");
  return node_name(std::string(full), at);
}

node_name node_name::from_sname(std::string_view arg) {
  if (arg.find('@') != std::string_view::npos) return from_sname(arg, {});
  return from_sname(arg, this_host_short_name());
}

node_name node_name::from_sname(std::string_view arg, std::string_view this_host) {
  std::string full = arg.find('@') != std::string_view::npos ? std::string(arg) : std::string(arg) + "@" + std::string(this_host);
  node_name n = parse(full);
  if (n.mode() != naming_mode::short_names)
    throw node_name_error("--sname " + std::string(arg) + ": host " + quoted(n.host()) +
                          " is not a short host name (it has a dot or is an IP address); use --name for "
                          "fully qualified names");
  return n;
}

node_name node_name::from_name(std::string_view arg) {
  if (arg.find('@') != std::string_view::npos) return from_name(arg, std::nullopt);
  std::optional<std::string> fqdn = this_host_fqdn();
  if (!fqdn) return from_name(arg, std::nullopt);
  return from_name(arg, std::string_view(*fqdn));
}

node_name node_name::from_name(std::string_view arg, std::optional<std::string_view> this_host_fqdn) {
  std::string full;
  if (arg.find('@') != std::string_view::npos) {
    full = std::string(arg);
  } else {
    if (!this_host_fqdn)
      throw node_name_error("--name " + std::string(arg) +
                            ": this host has no domain name, so there is no fully qualified name to use (erl -name "
                            "fails the same way); give the host explicitly, e.g. --name " +
                            std::string(arg) + "@host.example.com or --name " + std::string(arg) +
                            "@127.0.0.1, or use --sname");
    full = std::string(arg) + "@" + std::string(*this_host_fqdn);
  }
  node_name n = parse(full);
  if (n.mode() != naming_mode::long_names)
    throw node_name_error("--name " + std::string(arg) + ": host " + quoted(n.host()) +
                          " is neither a fully qualified name nor an IP address, so long-name nodes could not "
                          "reach it; use --sname for short names");
  return n;
}

std::string this_host_short_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0')
    throw node_name_error(std::string("cannot read this host's name: ") + std::strerror(errno));
  std::string_view h(buf);
  return std::string(h.substr(0, h.find('.')));
}

std::optional<std::string> this_host_fqdn() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return std::nullopt;
  std::string host(buf);
  if (host.find('.') != std::string::npos) return host;
  addrinfo hints{};
  hints.ai_flags = AI_CANONNAME;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return std::nullopt;
  std::optional<std::string> out;
  if (res->ai_canonname != nullptr && std::strchr(res->ai_canonname, '.') != nullptr) out = std::string(res->ai_canonname);
  freeaddrinfo(res);
  return out;
}

}  // namespace athanor::dist
