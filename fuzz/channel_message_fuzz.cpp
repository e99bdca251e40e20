// libFuzzer target: Phoenix's V2 channel message decoders (athanor::web::decode_channel_message for
// text frames, decode_channel_binary for binary ones) on arbitrary bytes. Invariants checked (abort
// on failure): decoding ends in a message or one channel_message_error; a decoded text message
// encodes (its payload came from JSON, so it has a JSON form) and that text decodes to the same
// message, which encodes to the same text; a decoded binary push, written back as a client frame,
// is the input byte for byte.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "athanor/web/channel_message.h"

using namespace athanor::web;

namespace {
void binary(std::string_view in) {
  channel_message m;
  try {
    m = decode_channel_binary(in);
  } catch (const channel_message_error&) {
    return;
  }
  if (!is_binary_payload(m.payload)) std::abort();
  const std::string jr = m.join_ref.value_or(""), ref = m.ref.value_or("");
  std::string again{char(0), char(jr.size()), char(ref.size()), char(m.topic.size()), char(m.event.size())};
  again.append(jr).append(ref).append(m.topic).append(m.event).append(m.payload.element(1).as_binary());
  if (again != in) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  binary(in);
  channel_message m;
  try {
    m = decode_channel_message(in);
  } catch (const channel_message_error&) {
    return 0;
  }
  const std::string text = encode_channel_message(m);  // must not throw
  const channel_message again = decode_channel_message(text);
  if (!(again == m)) std::abort();
  if (encode_channel_message(again) != text) std::abort();
  return 0;
}
