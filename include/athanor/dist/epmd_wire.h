// The EPMD wire format: the requests a node or a tool sends to the Erlang Port Mapper Daemon and
// the daemon's replies, as plain values, with pure functions that encode them to bytes and parse
// bytes back (no I/O). The layouts are those of the Erlang distribution protocol (OTP's
// erl_dist_protocol, "EPMD Protocol"), checked against OTP 25's epmd; every integer big-endian:
//
//   request    Len:u16, then Len bytes: the tag and its fields
//   ALIVE2_REQ  120 PortNo:u16 NodeType:u8 Protocol:u8 Highest:u16 Lowest:u16 Nlen:u16 Name Elen:u16 Extra
//   ALIVE2_X_RESP  118 Result:u8 Creation:u32     (registrant's Highest >= 6)
//   ALIVE2_RESP    121 Result:u8 Creation:u16     (older registrants)
//   PORT_PLEASE2_REQ  122 Name                     (the alive part: "a" for a@host)
//   PORT2_RESP  119 0 PortNo Type Protocol Highest Lowest Nlen Name Elen Extra  |  119 Result≠0
//   NAMES_REQ   110
//   NAMES_RESP  EpmdPort:u32, then "name <alive> at port <port>\n" per node
//
// Replies are not length-prefixed: a PORT2 or NAMES reply ends where the daemon closes the
// connection, so their parsers take everything read until then; an ALIVE2 reply has a fixed size
// given by its first byte (alive2_response_size).
//
// Every parser checks each length against the bytes it was given and throws epmd_error, with a
// message saying what was wrong, on anything malformed: it never reads out of bounds and never
// accepts trailing bytes. Encoders throw epmd_error for values that cannot be sent (a name that is
// not valid, fields too long for their length prefix). All of it is thread-safe (pure functions
// on values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace athanor::dist {

// EPMD's well-known TCP port (ERL_EPMD_PORT overrides it: default_epmd_port in epmd_server.h).
inline constexpr std::uint16_t epmd_well_known_port = 4369;

// Message tags (the first byte of a request body or of a reply).
inline constexpr std::uint8_t epmd_alive2_req = 120;      // 'x'
inline constexpr std::uint8_t epmd_alive2_x_resp = 118;   // 'v'
inline constexpr std::uint8_t epmd_alive2_resp = 121;     // 'y'
inline constexpr std::uint8_t epmd_port_please2_req = 122;  // 'z'
inline constexpr std::uint8_t epmd_port2_resp = 119;      // 'w'
inline constexpr std::uint8_t epmd_names_req = 110;       // 'n'

// Node types in ALIVE2_REQ and PORT2_RESP.
inline constexpr std::uint8_t epmd_normal_node = 77;  // 'M': an ordinary Erlang node
inline constexpr std::uint8_t epmd_hidden_node = 72;  // 'H': a hidden node (C nodes, Athanor)

// Limits epmd itself enforces: a name of at most 255 characters (UTF-8, so at most 1020 bytes)
// and an Extra field of at most 1020 bytes.
inline constexpr std::size_t epmd_max_name_chars = 255;
inline constexpr std::size_t epmd_max_extra_bytes = 1020;

// Malformed EPMD bytes, or a value that cannot be encoded. A value type; what() says what was wrong.
class epmd_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What EPMD holds for a registered node: the payload of ALIVE2_REQ and of a found PORT2_RESP.
// A plain value type.
struct epmd_node {
  std::string name;                  // the alive part only: "a" for a@host (see is_valid_epmd_name)
  std::uint16_t port = 0;            // the node's distribution listening port
  std::uint8_t node_type = epmd_hidden_node;
  std::uint8_t protocol = 0;         // 0: TCP/IPv4
  std::uint16_t highest_version = 6; // distribution protocol versions; OTP 25 registers 6 and 5
  std::uint16_t lowest_version = 6;
  std::string extra;                 // opaque; empty from erl
  bool operator==(const epmd_node&) const = default;
};

// ALIVE2_REQ: register a node. The connection it is sent on stays open for the node's life.
struct alive2_request {
  epmd_node node;
  bool operator==(const alive2_request&) const = default;
};
// PORT_PLEASE2_REQ: where does the node with this alive name listen?
struct port_please2_request {
  std::string name;
  bool operator==(const port_please2_request&) const = default;
};
// NAMES_REQ: list the registered nodes.
struct names_request {
  bool operator==(const names_request&) const = default;
};
using epmd_request = std::variant<alive2_request, port_please2_request, names_request>;

// The reply to ALIVE2_REQ: ALIVE2_X_RESP (118, 32-bit creation) when the registrant's highest
// version is 6 or more, else ALIVE2_RESP (121, 16-bit creation).
struct alive2_response {
  bool extended = true;        // true: tag 118 with a u32 creation; false: tag 121 with a u16 one
  std::uint8_t result = 0;     // 0: registered; anything else: refused (epmd sends 1 for a taken name)
  std::uint32_t creation = 0;  // the node's incarnation number (meaningless when refused)
  bool operator==(const alive2_response&) const = default;
};
// The reply to PORT_PLEASE2_REQ.
struct port2_response {
  std::optional<epmd_node> node;  // nullopt: no node of that name is registered
  bool operator==(const port2_response&) const = default;
};
// One line of a NAMES reply.
struct epmd_name_entry {
  std::string name;
  std::uint16_t port = 0;
  bool operator==(const epmd_name_entry&) const = default;
};
// The reply to NAMES_REQ.
struct names_response {
  std::uint32_t epmd_port = 0;  // the port the answering EPMD listens on
  std::vector<epmd_name_entry> nodes;
  bool operator==(const names_response&) const = default;
};

// True if `name` can be registered: 1 to 255 characters of valid UTF-8 with no control
// characters. epmd refuses NUL, invalid UTF-8 and more than 255 characters; control characters
// (a newline above all) are refused here too, because they could forge lines of a NAMES reply.
bool is_valid_epmd_name(std::string_view name) noexcept;

// ---- requests (the client encodes, the server parses) ----

// The request with its Len:u16 prefix, ready to send. Throws epmd_error for an invalid name or an
// Extra field over epmd_max_extra_bytes.
std::string encode_epmd_request(const epmd_request& request);

// Parses a request body: the Len bytes after the length prefix. Throws epmd_error for an empty
// body, an unknown tag, fields that do not add up to the body's length, or an invalid name. As
// epmd does, one NUL ending a PORT_PLEASE2 name is ignored (old clients sent C strings).
epmd_request parse_epmd_request_body(std::string_view body);

// Parses a whole request: Len:u16 and exactly Len bytes. Throws epmd_error as above, and when the
// length prefix does not match the size of `packet`.
epmd_request parse_epmd_request(std::string_view packet);

// ---- responses (the server encodes, the client parses) ----

// The reply's bytes. Throws epmd_error when a value does not fit (a 121 reply's creation over
// 16 bits, an invalid name, an Extra field over epmd_max_extra_bytes).
std::string encode_epmd_response(const alive2_response& response);
std::string encode_epmd_response(const port2_response& response);
std::string encode_epmd_response(const names_response& response);

// How many bytes the ALIVE2 reply starting with `first_byte` has: 6 for 118, 4 for 121. Throws
// epmd_error for any other byte.
std::size_t alive2_response_size(std::uint8_t first_byte);

// Parses exactly one ALIVE2 reply (4 or 6 bytes). Throws epmd_error otherwise.
alive2_response parse_alive2_response(std::string_view bytes);

// Parses a whole PORT2 reply (everything read until the daemon closed the connection). Throws
// epmd_error for a wrong tag, truncated fields or trailing bytes.
port2_response parse_port2_response(std::string_view bytes);

// Parses a whole NAMES reply. Each line must be "name <alive> at port <decimal port>\n" (the last
// " at port " splits it, so a name may hold spaces). Throws epmd_error for a reply shorter than
// 4 bytes, an unterminated or malformed line, or a port out of range.
names_response parse_names_response(std::string_view bytes);

}  // namespace athanor::dist
