// athanor::web::channel_message: one message of the Phoenix Channels wire protocol, and its V2
// JSON text form (Phoenix.Socket.V2.JSONSerializer; what npm `phoenix` sends with vsn=2.0.0):
//
//   [join_ref, ref, topic, event, payload]      e.g. ["4","4","room:lobby","phx_join",{"user":"ann"}]
//
// join_ref and ref are strings or null (the client numbers them; a server echoes them byte for
// byte), topic and event strings, payload any JSON value (an object in every frame the official
// client sends). Thread-safe: plain functions and values.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "athanor/term/term.h"

namespace athanor::web {

struct channel_message {
  std::optional<std::string> join_ref;  // null: a frame outside any join (heartbeats, broadcasts)
  std::optional<std::string> ref;       // null: a push the client will not match to a reply
  std::string topic;
  std::string event;
  term payload;  // as athanor::json decodes it: objects are maps with binary keys

  friend bool operator==(const channel_message&, const channel_message&) = default;
};

// Thrown by decode_channel_message for text that is not a V2 frame; what() says why.
class channel_message_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads one text frame. Throws channel_message_error when it is not JSON, not an array of exactly
// five elements, or join_ref/ref are neither strings nor null, or topic/event are not strings.
channel_message decode_channel_message(std::string_view text);

// The frame's text. Throws json::json_error if the payload has no JSON form (json.h).
std::string encode_channel_message(const channel_message& m);

// Binary frames (phoenix-protocol.md §A.3), for binary payloads: Phoenix's {:binary, Data},
// here the term {binary, <<Data>>} (binary_payload). Every header string is at most 255 bytes.
//
// True if `payload` is {binary, <<...>>}.
bool is_binary_payload(const term& payload) noexcept;
term binary_payload(std::string_view bytes);
// Reads a client's binary push (kind 0: join_ref, ref, topic, event, then the bytes); its payload
// is {binary, Bytes}. Throws channel_message_error for any other kind or a frame cut short.
channel_message decode_channel_binary(std::string_view frame);
// The client's binary push (kind 0) for `m`, whose payload is {binary, Bytes}: what
// decode_channel_binary reads (for clients and tests written in C++). Throws channel_message_error
// if the payload is not binary or a header string is longer than 255 bytes.
std::string encode_channel_binary(const channel_message& m);
// A server's binary frames: a push to one client (kind 0, no ref), a reply (kind 1: the client
// sees {status, response: ArrayBuffer}), a broadcast (kind 2). Throw channel_message_error if a
// header string is longer than 255 bytes.
std::string encode_binary_push(std::string_view join_ref, std::string_view topic, std::string_view event,
                               std::string_view bytes);
std::string encode_binary_reply(std::string_view join_ref, std::string_view ref, std::string_view topic,
                                std::string_view status, std::string_view bytes);
std::string encode_binary_broadcast(std::string_view topic, std::string_view event, std::string_view bytes);
// Reads a server's binary frame as the client does (for clients and tests written in C++): a push
// (kind 0) is a message with join_ref, no ref, payload {binary, Bytes}; a reply (kind 1) is event
// "phx_reply" with join_ref, ref and payload {"status": S, "response": {binary, Bytes}}; a
// broadcast (kind 2) has neither ref. Throws channel_message_error for another kind or a frame cut
// short.
channel_message decode_server_channel_binary(std::string_view frame);

}  // namespace athanor::web
