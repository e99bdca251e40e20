// libFuzzer target: the WebSocket frame decoder (with and without permessage-deflate, masks
// required or not), the extension negotiation and the UTF-8 validator on arbitrary bytes.
// Invariants checked (abort on failure): the decoder never consumes more than it is given; it
// reports the same events whether the bytes arrive at once or in pieces; message events respect
// the size limit and text messages are valid UTF-8; failure codes are 1002, 1007 or 1009; a
// message re-encoded as a client frame decodes to itself.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "athanor/web/websocket.h"

using namespace athanor::web;

namespace {
std::vector<ws_decoder::event> decode(std::string_view in, std::size_t step, bool mask, ws_deflate* z, ws_limits l) {
  ws_decoder d(l, mask, z);
  std::vector<ws_decoder::event> ev;
  std::string buf;
  for (std::size_t pos = 0; pos < in.size() && !d.finished(); pos += step) {
    buf.append(in.substr(pos, step));
    std::size_t used = d.feed(buf, ev);
    if (used > buf.size()) std::abort();
    buf.erase(0, used);
  }
  return ev;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::uint8_t knob = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  bool mask = knob & 1;
  bool deflate = knob & 2;
  ws_limits limits{.max_frame = (knob & 4) ? 64u : 65536u, .max_message = (knob & 4) ? 128u : 262144u};
  std::size_t step = std::size_t(knob >> 3) + 1;

  ws_deflate z1(ws_deflate_params{}), z2(ws_deflate_params{});
  auto whole = decode(in, in.size() ? in.size() : 1, mask, deflate ? &z1 : nullptr, limits);
  auto split = decode(in, step, mask, deflate ? &z2 : nullptr, limits);
  if (whole.size() != split.size()) std::abort();
  for (std::size_t i = 0; i < whole.size(); ++i) {
    const auto& e = whole[i];
    if (e.k != split[i].k || e.data != split[i].data || e.code != split[i].code) std::abort();
    if (e.k == ws_decoder::event::kind::message) {
      if (e.data.size() > limits.max_message) std::abort();
      if (e.op == ws_opcode::text) {
        utf8_validator v;
        if (!v.feed(e.data) || !v.complete()) std::abort();
      }
      if (!deflate) {
        std::string f;
        ws_encode_frame(f, e.op, e.data, true, false, 0x01020304u);
        ws_decoder again(ws_limits{.max_frame = 1u << 20, .max_message = 1u << 20}, true, nullptr);
        std::vector<ws_decoder::event> ev;
        if (again.feed(f, ev) != f.size() || ev.size() != 1 || ev[0].data != e.data) std::abort();
      }
    }
    if (e.k == ws_decoder::event::kind::fail && e.code != 1002 && e.code != 1007 && e.code != 1009) std::abort();
  }

  std::string resp;
  auto p = negotiate_permessage_deflate(in, resp);
  if (p && resp.rfind("permessage-deflate", 0) != 0) std::abort();
  return 0;
}
