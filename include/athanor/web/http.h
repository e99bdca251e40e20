// HTTP/1.1 message syntax (RFC 9112) without sockets: the request-head parser, the chunked body
// decoder, percent-decoding and query/form parsing. Pure functions and small value types: every
// function here is thread-safe; a chunked_decoder object belongs to one caller (not thread-safe).
// The server (server.h) drives these over a connection; the fuzzers drive them over raw bytes.
//
//   athanor::web::request_head h;
//   auto r = athanor::web::parse_request_head(buffer, {}, h);
//   if (r.status == athanor::web::parse_status::ok) { ... h.method, h.path, h.header("host") ... }
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace athanor::web {

// One header field: the name lower-cased (field names are case-insensitive), the value as sent
// with surrounding whitespace removed. A plain value type.
struct header_field {
  std::string name;
  std::string value;
};

// Ordered name/value pairs (query strings, forms, path parameters). A plain value type.
using param_list = std::vector<std::pair<std::string, std::string>>;

// Size limits for a request head; a request beyond one is refused with the status in parentheses.
// A plain value type.
struct parse_limits {
  std::size_t max_request_line = 8192;   // method + target + version (414)
  std::size_t max_header_bytes = 16384;  // all header lines together (431)
  std::size_t max_headers = 100;         // header fields (431)
};

// A parsed request line and header section. A plain value type.
struct request_head {
  std::string method;            // as sent (methods are case-sensitive)
  std::string target;            // the request-target as sent
  std::string path;              // target's path, still percent-encoded ("/" for "*" and absolute-form without path)
  std::string query;             // after '?', without it ("" if none)
  int version_minor = 1;         // HTTP/1.<minor>: 0 or 1
  std::vector<header_field> headers;
  // Derived from the headers:
  std::optional<std::uint64_t> content_length;
  bool chunked = false;          // Transfer-Encoding ends with chunked
  bool keep_alive = true;        // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive
  bool expect_continue = false;  // "Expect: 100-continue"
  bool bad_expect = false;       // an Expect other than 100-continue (417)

  // The value of the first header named `name` (lower-case), or "" if absent.
  std::string_view header(std::string_view name) const noexcept;
  // True if a header named `name` (lower-case) is present.
  bool has_header(std::string_view name) const noexcept;
  // True if the comma-separated header `name` contains `token` (case-insensitively), as in
  // "Connection: keep-alive, Upgrade".
  bool header_has_token(std::string_view name, std::string_view token) const noexcept;
};

// What parse_request_head concluded. A plain value type.
enum class parse_status { ok, incomplete, error };

// What parse_request_head found. On ok, `consumed` bytes form the head (the body follows). On error,
// `http_status` is the status to answer with (400, 414, 431, 505) and `reason` says why.
struct parse_result {
  parse_status status = parse_status::incomplete;
  std::size_t consumed = 0;
  int http_status = 0;
  const char* reason = "";
};

// Parses a request head from the start of `buf` into `out`. Returns ok (with the head's length),
// incomplete (read more and call again with the longer buffer: nothing is kept between calls), or
// error with the status to answer. Leading empty lines are skipped (RFC 9112 §2.2). Strict where
// leniency enables request smuggling: no whitespace before a colon, no obs-fold, no bare CR, one
// Content-Length value, Transfer-Encoding only with chunked last; HTTP/1.1 requires Host.
parse_result parse_request_head(std::string_view buf, const parse_limits& limits, request_head& out);

// Decodes a chunked body (RFC 9112 §7.1) incrementally: feed it bytes as they arrive. Not
// thread-safe. Chunk extensions and trailer fields are read and dropped; a trailer field must
// still be well formed (a token name, a colon, a value without NUL, bare CR or other control
// characters but tab, no obsolete line folding), or the body is an error.
class chunked_decoder {
 public:
  enum class status { need_more, done, error };

  // max_body: total decoded bytes allowed (beyond: error with too_large() true).
  explicit chunked_decoder(std::uint64_t max_body, std::size_t max_line = 4096) : max_body_(max_body), max_line_(max_line) {}

  // Consumes a prefix of `in` (its length in `consumed`), appending chunk data to `out`. Returns
  // done once the last chunk and the trailer section are consumed (bytes after them are the next
  // request and are not consumed), need_more when `in` ended first, or error on malformed input.
  status feed(std::string_view in, std::size_t& consumed, std::string& out);
  // After an error: true if it was the body limit (413) rather than malformed syntax (400).
  bool too_large() const noexcept { return too_large_; }

 private:
  enum class state : std::uint8_t {
    size, ext, size_lf, data, data_cr, data_lf, trailer_start, trailer, trailer_cr, trailer_lf, done
  };
  state st_ = state::size;
  std::uint64_t max_body_;
  std::size_t max_line_;
  std::uint64_t remaining_ = 0;   // of the current chunk
  std::uint64_t total_ = 0;
  std::size_t line_ = 0;          // bytes in the current size/extension/trailer line
  int digits_ = 0;
  bool in_value_ = false;         // past the current trailer field's colon
  bool too_large_ = false;
};

// Decodes %XX escapes (and '+' as a space when plus_as_space). Returns nullopt on a malformed
// escape ("%4", "%zz").
std::optional<std::string> percent_decode(std::string_view s, bool plus_as_space = false);

// Decodes base64 in either alphabet (standard "+/" or URL-safe "-_"), padded or not: what web
// clients send (phoenix.js's auth token, LongPoll's binary lines, signed tokens). Returns nullopt
// for any other character or a length no byte boundary fits. (Hand-written: OpenSSL's
// EVP_DecodeBlock takes neither unpadded nor URL-safe input.)
std::optional<std::string> base64_decode(std::string_view text);

// Parses "a=1&b=two&c" (application/x-www-form-urlencoded, also query strings) into pairs in order,
// decoding escapes and '+'. A malformed escape keeps the raw text; a key without '=' gets "".
param_list parse_query(std::string_view s);

// The reason phrase for a status code ("Not Found"), or "Unknown".
std::string_view status_text(int status) noexcept;

// Lower-cases ASCII letters in place and returns the string.
std::string& ascii_lower(std::string& s) noexcept;
// Case-insensitive ASCII comparison.
bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace athanor::web
