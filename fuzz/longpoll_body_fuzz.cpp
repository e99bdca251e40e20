// libFuzzer target: the LongPoll transport's POST body reader (athanor::web::detail::longpoll_frames,
// src/web/longpoll.cpp) and the base64 decoder (web::base64_decode), on arbitrary bytes. The first input byte picks the
// Content-Type (ndjson or not). Invariants checked (abort on failure): a non-ndjson body is one
// text frame holding it; an ndjson body is refused or gives at most kMaxLongPollBatch frames,
// text ones being lines that start with '['; base64 that decodes gives 3 bytes per 4 characters.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "web/socket_internal.h"

using namespace athanor::web;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool ndjson = data[0] & 1;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto frames = detail::longpoll_frames(ndjson ? "application/x-ndjson" : "application/json", body);
  if (!ndjson) {
    if (!frames || frames->size() != 1 || (*frames)[0].type != ws_opcode::text || (*frames)[0].data != body) std::abort();
  } else if (frames) {
    if (frames->size() > detail::kMaxLongPollBatch) std::abort();
    for (const ws_message& f : *frames) {
      if (f.type == ws_opcode::text && (f.data.empty() || f.data[0] != '[' || f.data.find('\n') != std::string::npos)) std::abort();
    }
  }
  std::string_view b64 = body;
  while (!b64.empty() && b64.back() == '=') b64.remove_suffix(1);
  if (auto bytes = base64_decode(body)) {
    if (bytes->size() != b64.size() * 3 / 4) std::abort();
  }
  return 0;
}
