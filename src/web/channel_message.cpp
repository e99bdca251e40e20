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

bool is_binary_payload(const term& payload) noexcept {
  return payload.is_tuple() && payload.tuple_size() == 2 && payload.element(0) == term(atom("binary")) &&
         payload.element(1).is_binary();
}

term binary_payload(std::string_view bytes) { return tuple(atom("binary"), term(bytes)); }

channel_message decode_channel_binary(std::string_view f) {
  if (f.size() < 5 || f[0] != '\0') throw channel_message_error("channel message: a binary frame must be a push (kind 0) with its 4 lengths");
  const std::size_t lens[4] = {std::uint8_t(f[1]), std::uint8_t(f[2]), std::uint8_t(f[3]), std::uint8_t(f[4])};
  std::size_t at = 5;
  std::string_view parts[4];
  for (int i = 0; i < 4; ++i) {
    if (f.size() - at < lens[i]) throw channel_message_error("channel message: a binary frame cut short of its header");
    parts[i] = f.substr(at, lens[i]);
    at += lens[i];
  }
  channel_message m;
  m.join_ref = parts[0].empty() ? std::nullopt : std::optional<std::string>(parts[0]);
  m.ref = parts[1].empty() ? std::nullopt : std::optional<std::string>(parts[1]);
  m.topic = std::string(parts[2]);
  m.event = std::string(parts[3]);
  m.payload = binary_payload(f.substr(at));
  return m;
}

channel_message decode_server_channel_binary(std::string_view f) {
  if (f.empty() || std::uint8_t(f[0]) > 2) throw channel_message_error("channel message: a server's binary frame is of kind 0, 1 or 2");
  const int kind = f[0];
  const std::size_t fields = kind == 0 ? 3 : kind == 1 ? 4 : 2;
  if (f.size() < 1 + fields) throw channel_message_error("channel message: a binary frame cut short of its lengths");
  std::size_t at = 1 + fields;
  std::string_view parts[4];
  for (std::size_t i = 0; i < fields; ++i) {
    const std::size_t len = std::uint8_t(f[1 + i]);
    if (f.size() - at < len) throw channel_message_error("channel message: a binary frame cut short of its header");
    parts[i] = f.substr(at, len);
    at += len;
  }
  auto text_or_null = [](std::string_view s) { return s.empty() ? std::nullopt : std::optional<std::string>(s); };
  channel_message m;
  const term bytes = binary_payload(f.substr(at));
  if (kind == 0) {
    m.join_ref = text_or_null(parts[0]);
    m.topic = std::string(parts[1]);
    m.event = std::string(parts[2]);
    m.payload = bytes;
  } else if (kind == 1) {
    m.join_ref = text_or_null(parts[0]);
    m.ref = text_or_null(parts[1]);
    m.topic = std::string(parts[2]);
    m.event = "phx_reply";
    m.payload = map({{term("status"), term(parts[3])}, {term("response"), bytes}});
  } else {
    m.topic = std::string(parts[0]);
    m.event = std::string(parts[1]);
    m.payload = bytes;
  }
  return m;
}

namespace {
char length_byte(std::string_view s) {
  if (s.size() > 255) throw channel_message_error("channel message: a binary frame's header string is over 255 bytes");
  return char(s.size());
}
}  // namespace

std::string encode_channel_binary(const channel_message& m) {
  if (!is_binary_payload(m.payload)) throw channel_message_error("channel message: a binary push needs a {binary, Bytes} payload");
  const std::string_view jr = m.join_ref ? std::string_view(*m.join_ref) : std::string_view();
  const std::string_view ref = m.ref ? std::string_view(*m.ref) : std::string_view();
  std::string f{char(0), length_byte(jr), length_byte(ref), length_byte(m.topic), length_byte(m.event)};
  f.append(jr).append(ref).append(m.topic).append(m.event).append(m.payload.element(1).as_binary());
  return f;
}

std::string encode_binary_push(std::string_view join_ref, std::string_view topic, std::string_view event,
                               std::string_view bytes) {
  std::string f{char(0), length_byte(join_ref), length_byte(topic), length_byte(event)};
  f.append(join_ref).append(topic).append(event).append(bytes);
  return f;
}

std::string encode_binary_reply(std::string_view join_ref, std::string_view ref, std::string_view topic,
                                std::string_view status, std::string_view bytes) {
  std::string f{char(1), length_byte(join_ref), length_byte(ref), length_byte(topic), length_byte(status)};
  f.append(join_ref).append(ref).append(topic).append(status).append(bytes);
  return f;
}

std::string encode_binary_broadcast(std::string_view topic, std::string_view event, std::string_view bytes) {
  std::string f{char(2), length_byte(topic), length_byte(event)};
  f.append(topic).append(event).append(bytes);
  return f;
}

}  // namespace athanor::web
