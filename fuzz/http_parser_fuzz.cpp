// libFuzzer target: the HTTP/1.1 request-head parser and the chunked body decoder on arbitrary bytes.
// The input's first byte picks limits and a split step; the rest is fed as a connection would:
// the head parser on growing prefixes (it must agree with parsing the whole buffer at once), then
// the chunked decoder over the bytes after the head, in pieces. Invariants checked (abort on
// failure): a result never claims more bytes than it was given; ok heads have a method, a path
// starting with '/' (or "*"), lower-case header names; the chunked decoder's output never exceeds
// its limit and splitting the input never changes the decoded bytes or the outcome.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "athanor/web/http.h"

using namespace athanor::web;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::uint8_t knob = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  parse_limits limits;
  if (knob & 1) limits = parse_limits{.max_request_line = 64, .max_header_bytes = 256, .max_headers = 4};

  request_head whole;
  parse_result r = parse_request_head(in, limits, whole);
  if (r.consumed > in.size()) std::abort();
  if (r.status == parse_status::ok) {
    if (whole.method.empty() || whole.path.empty()) std::abort();
    if (whole.path[0] != '/' && whole.path != "*") std::abort();
    for (const auto& h : whole.headers)
      for (char c : h.name)
        if (c >= 'A' && c <= 'Z') std::abort();
    if (whole.chunked && whole.content_length) std::abort();
  }
  if (r.status == parse_status::error && (r.http_status < 400 || r.http_status > 505)) std::abort();

  // Growing prefixes: incomplete until the result of the whole buffer, never a different head.
  std::size_t step = std::size_t(knob >> 4) + 1;
  for (std::size_t n = 0; n < in.size(); n += step) {
    request_head h;
    parse_result p = parse_request_head(in.substr(0, n), limits, h);
    if (p.status == parse_status::ok) {
      if (p.consumed > n) std::abort();
      // Once a prefix parses, the whole buffer parses to the same head length.
      if (r.status != parse_status::ok || r.consumed != p.consumed) std::abort();
      break;
    }
  }

  // The chunked decoder on what follows the head (or the whole input), whole and in pieces.
  std::string_view body = r.status == parse_status::ok ? in.substr(r.consumed) : in;
  std::uint64_t max_body = (knob & 2) ? 64 : (1u << 20);
  chunked_decoder a(max_body, 128);
  std::string out_a;
  std::size_t used_a = 0;
  auto sa = a.feed(body, used_a, out_a);
  if (used_a > body.size() || out_a.size() > max_body) std::abort();

  chunked_decoder b(max_body, 128);
  std::string out_b;
  std::size_t pos = 0;
  auto sb = chunked_decoder::status::need_more;
  while (pos < body.size()) {
    std::size_t used = 0;
    sb = b.feed(body.substr(pos, step), used, out_b);
    pos += used;
    if (sb != chunked_decoder::status::need_more) break;
  }
  if (sa != sb || out_a != out_b) std::abort();
  if (sa == chunked_decoder::status::done && pos != used_a) std::abort();

  // Forms and escapes: never crash; decoding never grows the text.
  auto d = percent_decode(in, true);
  if (d && d->size() > in.size()) std::abort();
  param_list q = parse_query(in);
  (void)q;
  return 0;
}
