// libFuzzer target: Phoenix's V2 JSON channel message decoder (athanor::web::decode_channel_message)
// on arbitrary bytes. Invariants checked (abort on failure): decoding ends in a message or one
// channel_message_error; a decoded message encodes (its payload came from JSON, so it has a JSON
// form) and that text decodes to the same message, which encodes to the same text.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "athanor/web/channel_message.h"

using namespace athanor::web;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
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
