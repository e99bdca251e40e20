// libFuzzer target: Phoenix's V2 channel message decoders (athanor::web::decode_channel_message for
// text frames, decode_channel_binary for a client's binary ones, decode_server_channel_binary for a
// server's) on arbitrary bytes. Invariants checked (abort
// on failure): decoding ends in a message or one channel_message_error; a decoded text message
// encodes (its payload came from JSON, so it has a JSON form) and that text decodes to the same
// message, which encodes to the same text; a decoded binary frame, written back with the encoder of
// its kind, is the input byte for byte.
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
  if (encode_channel_binary(m) != in) std::abort();
}

// A server's frame, as a client reads it: written back with the matching encoder, it is the input.
void server_binary(std::string_view in) {
  channel_message m;
  try {
    m = decode_server_channel_binary(in);
  } catch (const channel_message_error&) {
    return;
  }
  std::string again;
  if (in[0] == 0) {
    again = encode_binary_push(m.join_ref.value_or(""), m.topic, m.event, m.payload.element(1).as_binary());
  } else if (in[0] == 1) {
    again = encode_binary_reply(m.join_ref.value_or(""), m.ref.value_or(""), m.topic,
                                m.payload.find(athanor::term("status"))->as_binary(),
                                m.payload.find(athanor::term("response"))->element(1).as_binary());
  } else {
    again = encode_binary_broadcast(m.topic, m.event, m.payload.element(1).as_binary());
  }
  if (again != in) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  binary(in);
  server_binary(in);
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
