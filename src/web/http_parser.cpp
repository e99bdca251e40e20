// The HTTP/1.1 request parser.
//
// Hand-written rather than libhttp-parser: the head is parsed from one contiguous buffer the
// connection already owns (no callbacks, no copies beyond the strings kept), every limit maps to
// its own status (414/431/505) at the byte where it is crossed, and the smuggling rules of RFC 9112
// (one Content-Length, chunked last, no obs-fold, no whitespace before the colon) are explicit.
// It is fuzzed by fuzz/http_parser_fuzz.cpp.
#include "athanor/web/http.h"

#include <algorithm>
#include <cstring>

namespace athanor::web {

namespace {

// tchar from RFC 9110 §5.6.2.
bool is_tchar(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

std::string_view trim_ows(std::string_view v) noexcept {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

parse_result fail(int status, const char* why) { return parse_result{parse_status::error, 0, status, why}; }

// Finds the end of the line starting at `from`: the index of its '\n', or npos.
std::size_t line_end(std::string_view buf, std::size_t from) noexcept { return buf.find('\n', from); }

// True if `s` holds a CR followed by anything but LF: no line end can come of it, so a head that
// holds one is refused at once rather than waited on until the request timeout.
bool has_bare_cr(std::string_view s) noexcept {
  for (std::size_t i = s.find('\r'); i != std::string_view::npos && i + 1 < s.size(); i = s.find('\r', i + 1))
    if (s[i + 1] != '\n') return true;
  return false;
}

// The line [from, lf) without its trailing CR. A CR elsewhere in it is an error (returns false).
bool line_text(std::string_view buf, std::size_t from, std::size_t lf, std::string_view& out) noexcept {
  std::size_t end = lf;
  if (end > from && buf[end - 1] == '\r') --end;
  out = buf.substr(from, end - from);
  return out.find('\r') == std::string_view::npos;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string& ascii_lower(std::string& s) noexcept {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c + 32);
  return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = char(x + 32);
    if (y >= 'A' && y <= 'Z') y = char(y + 32);
    if (x != y) return false;
  }
  return true;
}

std::string_view request_head::header(std::string_view name) const noexcept {
  for (const auto& h : headers)
    if (h.name == name) return h.value;
  return {};
}

bool request_head::has_header(std::string_view name) const noexcept {
  for (const auto& h : headers)
    if (h.name == name) return true;
  return false;
}

bool request_head::header_has_token(std::string_view name, std::string_view token) const noexcept {
  for (const auto& h : headers) {
    if (h.name != name) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      std::size_t comma = v.find(',');
      std::string_view item = trim_ows(v.substr(0, comma));
      if (iequals(item, token)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

parse_result parse_request_head(std::string_view buf, const parse_limits& limits, request_head& out) {
  // Leading empty lines (RFC 9112 §2.2: a server SHOULD ignore at least one).
  std::size_t pos = 0;
  while (pos < buf.size() && (buf[pos] == '\r' || buf[pos] == '\n')) {
    if (pos >= 64) return fail(400, "too many empty lines before the request");
    ++pos;
  }
  std::size_t lf = line_end(buf, pos);
  if (lf == std::string_view::npos) {
    if (buf.size() - pos > limits.max_request_line) return fail(414, "request line too long");
    if (has_bare_cr(buf.substr(pos))) return fail(400, "bare CR in request line");
    return parse_result{};
  }
  if (lf - pos > limits.max_request_line) return fail(414, "request line too long");

  // The whole head must be present before parsing the fields: find the empty line.
  std::size_t head_start = lf + 1;
  std::size_t end = std::string_view::npos;  // index just past the empty line
  {
    std::size_t p = head_start;
    std::size_t fields = 0;
    for (;;) {
      std::size_t l = line_end(buf, p);
      if (l == std::string_view::npos) {
        if (buf.size() - head_start > limits.max_header_bytes) return fail(431, "header section too large");
        if (fields > limits.max_headers) return fail(431, "too many header fields");
        if (has_bare_cr(buf.substr(pos))) return fail(400, "bare CR in the request head");
        return parse_result{};
      }
      if (l == p || (l == p + 1 && buf[p] == '\r')) {
        end = l + 1;
        break;
      }
      if (++fields > limits.max_headers) return fail(431, "too many header fields");
      p = l + 1;
      if (p - head_start > limits.max_header_bytes) return fail(431, "header section too large");
    }
  }

  // Request line: method SP request-target SP HTTP-version.
  std::string_view line;
  if (!line_text(buf, pos, lf, line)) return fail(400, "bare CR in request line");
  std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  for (unsigned char c : method)
    if (!is_tchar(c)) return fail(400, "malformed method");
  std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return fail(400, "malformed request line");
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  for (unsigned char c : target)
    if (c <= 0x20 || c == 0x7f) return fail(400, "invalid character in request target");
  std::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' || version[5] > '9' ||
      version[7] < '0' || version[7] > '9') {
    return fail(400, "malformed HTTP version");
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) return fail(505, "HTTP version not supported");

  out = request_head{};
  out.method.assign(method);
  out.target.assign(target);
  out.version_minor = version[7] - '0';

  // Target forms (RFC 9112 §3.2): origin-form, absolute-form, asterisk-form (OPTIONS).
  std::string_view path_and_query;
  if (target.front() == '/') {
    path_and_query = target;
  } else if (target == "*") {
    if (method != "OPTIONS") return fail(400, "asterisk-form only with OPTIONS");
    path_and_query = "*";
  } else {
    std::size_t scheme = target.find("://");
    if (scheme == std::string_view::npos || scheme == 0) return fail(400, "unsupported request-target form");
    std::size_t slash = target.find('/', scheme + 3);
    path_and_query = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  std::size_t hash = path_and_query.find('#');
  if (hash != std::string_view::npos) return fail(400, "fragment in request target");
  std::size_t q = path_and_query.find('?');
  out.path.assign(path_and_query.substr(0, q));
  if (q != std::string_view::npos) out.query.assign(path_and_query.substr(q + 1));
  if (out.path.empty()) out.path.assign(1, '/');

  // Header fields.
  std::size_t p = head_start;
  int hosts = 0;
  bool te_seen = false;
  while (p < end) {
    std::size_t l = line_end(buf, p);
    std::string_view f;
    if (!line_text(buf, p, l, f)) return fail(400, "bare CR in header section");
    p = l + 1;
    if (f.empty()) break;
    if (f.front() == ' ' || f.front() == '\t') return fail(400, "obsolete line folding");
    std::size_t colon = f.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail(400, "malformed header field");
    std::string_view name = f.substr(0, colon);
    for (unsigned char c : name)
      if (!is_tchar(c)) return fail(400, "invalid header field name");
    std::string_view value = trim_ows(f.substr(colon + 1));
    for (unsigned char c : value)
      if ((c < 0x20 && c != '\t') || c == 0x7f) return fail(400, "invalid character in header value");
    header_field h{std::string(name), std::string(value)};
    ascii_lower(h.name);

    if (h.name == "content-length") {
      if (value.empty() || value.size() > 18) return fail(400, "invalid Content-Length");
      std::uint64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return fail(400, "invalid Content-Length");
        n = n * 10 + std::uint64_t(c - '0');
      }
      if (out.content_length && *out.content_length != n) return fail(400, "conflicting Content-Length");
      out.content_length = n;
    } else if (h.name == "transfer-encoding") {
      te_seen = true;
      // The last coding must be chunked; we implement no other (RFC 9112 §6.3: else 400 and close).
      std::string_view v = value;
      std::size_t comma = v.rfind(',');
      std::string_view last = trim_ows(comma == std::string_view::npos ? v : v.substr(comma + 1));
      if (!iequals(last, "chunked")) return fail(400, "unsupported Transfer-Encoding");
      if (v.find(',') != std::string_view::npos) return fail(400, "unsupported Transfer-Encoding");
      if (out.chunked) return fail(400, "chunked applied twice");
      out.chunked = true;
    } else if (h.name == "host") {
      ++hosts;
    }
    out.headers.push_back(std::move(h));
  }
  if (te_seen && out.version_minor == 0) return fail(400, "Transfer-Encoding in HTTP/1.0");
  if (out.version_minor == 1 && hosts != 1) return fail(400, hosts == 0 ? "missing Host" : "more than one Host");
  if (out.chunked && out.content_length) {
    // Both: Transfer-Encoding wins and the connection closes after the response (RFC 9112 §6.3).
    out.content_length.reset();
    out.keep_alive = false;
  }

  if (out.version_minor == 0) out.keep_alive = out.header_has_token("connection", "keep-alive");
  else if (out.header_has_token("connection", "close")) out.keep_alive = false;
  if (out.chunked && out.content_length) out.keep_alive = false;
  std::string_view expect = out.header("expect");
  if (!expect.empty()) {
    if (iequals(expect, "100-continue")) out.expect_continue = out.version_minor == 1;
    else out.bad_expect = true;
  }
  return parse_result{parse_status::ok, end, 0, ""};
}

// ---- chunked bodies ----------------------------------------------------------------------------

chunked_decoder::status chunked_decoder::feed(std::string_view in, std::size_t& consumed, std::string& out) {
  std::size_t i = 0;
  auto error = [&] {
    consumed = i;
    return status::error;
  };
  while (i < in.size()) {
    char c = in[i];
    switch (st_) {
      case state::size: {
        int v = hex_value(c);
        if (v >= 0) {
          if (++digits_ > 15) return error();  // > 2^60: no body is that large
          remaining_ = remaining_ * 16 + std::uint64_t(v);
          ++i;
          break;
        }
        if (digits_ == 0) return error();
        if (c == ';' || c == ' ' || c == '\t') {
          st_ = state::ext;
          line_ = 0;
        } else if (c == '\r') {
          st_ = state::size_lf;
          ++i;
        } else if (c == '\n') {
          st_ = state::size_lf;
        } else {
          return error();
        }
        break;
      }
      case state::ext:
        // Chunk extensions: skipped, bounded.
        if (c == '\n') {
          st_ = state::size_lf;
          break;
        }
        if (c == '\r') {
          st_ = state::size_lf;
          ++i;
          break;
        }
        if (++line_ > max_line_) return error();
        ++i;
        break;
      case state::size_lf:
        if (c != '\n') return error();
        ++i;
        if (total_ + remaining_ > max_body_) {  // no overflow: remaining_ < 2^60, total_ <= max_body_
          too_large_ = true;
          return error();
        }
        st_ = remaining_ == 0 ? state::trailer_start : state::data;
        digits_ = 0;
        break;
      case state::data: {
        std::size_t take = std::size_t(std::min<std::uint64_t>(remaining_, in.size() - i));
        out.append(in.data() + i, take);
        i += take;
        remaining_ -= take;
        total_ += take;
        if (remaining_ == 0) st_ = state::data_cr;
        break;
      }
      case state::data_cr:
        if (c == '\r') {
          st_ = state::data_lf;
          ++i;
        } else if (c == '\n') {
          st_ = state::data_lf;
        } else {
          return error();
        }
        break;
      case state::data_lf:
        if (c != '\n') return error();
        ++i;
        st_ = state::size;
        break;
      case state::trailer_start:
        line_ = 0;
        in_value_ = false;
        if (c == '\r') {
          st_ = state::trailer_lf;
          ++i;
        } else if (c == '\n') {
          st_ = state::trailer_lf;
        } else if (c == ' ' || c == '\t') {
          return error();  // obsolete line folding (RFC 9112 §5.2: reject it)
        } else {
          st_ = state::trailer;
        }
        break;
      case state::trailer:
        // A trailer field, checked and dropped, bounded (one line at most max_line_, at most 64
        // lines): name ":" value, as a header field.
        if (c == '\r') {
          st_ = state::trailer_cr;
        } else if (c == '\n') {
          if (!in_value_) return error();  // no colon
          st_ = state::trailer_start;
          if (++digits_ > 64) return error();
        } else if (++line_ > max_line_) {
          return error();
        } else if (!in_value_) {
          if (c == ':') {
            if (line_ == 1) return error();  // an empty name
            in_value_ = true;
          } else if (!is_tchar(c)) {
            return error();
          }
        } else if (const auto u = static_cast<unsigned char>(c); (u < 0x20 && u != '\t') || u == 0x7f) {
          return error();  // NUL and other control characters
        }
        ++i;
        break;
      case state::trailer_cr:
        if (c != '\n') return error();  // a bare CR
        st_ = state::trailer;            // the LF ends the field there
        break;
      case state::trailer_lf:
        if (c != '\n') return error();
        ++i;
        st_ = state::done;
        consumed = i;
        return status::done;
      case state::done:
        consumed = i;
        return status::done;
    }
  }
  consumed = i;
  return st_ == state::done ? status::done : status::need_more;
}

// ---- percent-encoding and forms ------------------------------------------------------------------

std::optional<std::string> base64_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string bytes;
  bytes.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else return std::nullopt;
    acc = (acc << 6) | std::uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return bytes;
}

std::optional<std::string> percent_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(char(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

param_list parse_query(std::string_view s) {
  param_list out;
  while (!s.empty()) {
    std::size_t amp = s.find('&');
    std::string_view item = s.substr(0, amp);
    s = amp == std::string_view::npos ? std::string_view() : s.substr(amp + 1);
    if (item.empty()) continue;
    std::size_t eq = item.find('=');
    std::string_view k = item.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    auto dk = percent_decode(k, true);
    auto dv = percent_decode(v, true);
    out.emplace_back(dk ? std::move(*dk) : std::string(k), dv ? std::move(*dv) : std::string(v));
  }
  return out;
}

std::string_view status_text(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace athanor::web
