// Phoenix's V2 JSON serializer (channel_message.h). Hand-written over athanor::json rather than a
// JSON library's DOM: payloads are terms everywhere else (channels, PubSub), so the frame is
// decoded into terms once.
#include "athanor/web/channel_message.h"

#include <vector>

#include "athanor/term/json.h"

namespace athanor::web {

namespace {
std::optional<std::string> text_or_null(const term& t, const char* what) {
  if (t == term(atom("nil"))) return std::nullopt;
  if (!t.is_binary()) throw channel_message_error(std::string("channel message: ") + what + " must be a string or null");
  return std::string(t.as_binary());
}
term null_or_text(const std::optional<std::string>& s) { return s ? term(*s) : term(atom("nil")); }
}  // namespace

channel_message decode_channel_message(std::string_view text) {
  term frame;
  try {
    frame = json::decode(text);
  } catch (const json::json_error& e) {
    throw channel_message_error(std::string("channel message: not JSON: ") + e.what());
  }
  std::vector<term> parts;
  term t = frame;
  for (; t.is_list() && !t.is_nil() && parts.size() <= 5; t = t.tail()) parts.push_back(t.head());
  if (!frame.is_list() || !t.is_nil() || parts.size() != 5) {
    throw channel_message_error("channel message: not an array [join_ref, ref, topic, event, payload]");
  }
  if (!parts[2].is_binary()) throw channel_message_error("channel message: the topic must be a string");
  if (!parts[3].is_binary()) throw channel_message_error("channel message: the event must be a string");
  channel_message m;
  m.join_ref = text_or_null(parts[0], "join_ref");
  m.ref = text_or_null(parts[1], "ref");
  m.topic = std::string(parts[2].as_binary());
  m.event = std::string(parts[3].as_binary());
  m.payload = std::move(parts[4]);
  return m;
}

std::string encode_channel_message(const channel_message& m) {
  return json::encode(list({null_or_text(m.join_ref), null_or_text(m.ref), term(m.topic), term(m.event), m.payload}));
}

}  // namespace athanor::web
