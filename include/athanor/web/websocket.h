// WebSocket (RFC 6455) for Athanor processes: the frame codec (no sockets: what the server and the
// fuzzer drive), permessage-deflate (RFC 7692), and `ws`, the connection object a WebSocket handler
// process receives, with `ws_outbox`, through which other processes push to a connection. After
// the upgrade every WebSocket connection is its own process.
//
//   r.websocket("/echo", [](athanor::web::ws& ws) -> athanor::proc {
//     while (auto m = co_await ws.receive()) co_await ws.send(*m);
//   });
#pragma once

#include <any>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "athanor/runtime/proc.h"
#include "athanor/web/http.h"

namespace athanor::web {

// A frame opcode (RFC 6455 §5.2). A plain value type.
enum class ws_opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// Close codes (RFC 6455 §7.4.1).
namespace ws_close {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported = 1003;
inline constexpr std::uint16_t no_status = 1005;   // never sent: "the close frame had no code"
inline constexpr std::uint16_t abnormal = 1006;    // never sent: "closed without a close frame"
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy = 1008;
inline constexpr std::uint16_t too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
}  // namespace ws_close

// A whole WebSocket message. A plain value type.
struct ws_message {
  ws_opcode type = ws_opcode::text;  // text or binary
  std::string data;
  bool mailbox = false;              // receive_or_mail() only: no frame; a process message is waiting

  static ws_message text(std::string s) { return ws_message{ws_opcode::text, std::move(s), false}; }
  static ws_message binary(std::string s) { return ws_message{ws_opcode::binary, std::move(s), false}; }
  bool is_text() const noexcept { return type == ws_opcode::text; }
};

// Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, at most U+10FFFF), so a
// text message split across frames is checked as it arrives. Not thread-safe.
class utf8_validator {
 public:
  // Returns false as soon as the bytes so far cannot be the start of valid UTF-8.
  bool feed(std::string_view bytes) noexcept;
  // True if the bytes so far end on a character boundary.
  bool complete() const noexcept { return need_ == 0; }
  void reset() noexcept { need_ = 0; lo_ = 0x80; hi_ = 0xBF; }

 private:
  std::uint8_t need_ = 0;  // continuation bytes still expected
  std::uint8_t lo_ = 0x80, hi_ = 0xBF;  // allowed range of the next continuation byte
};

// Negotiated permessage-deflate parameters (RFC 7692). A plain value type.
struct ws_deflate_params {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
};

// Reads a Sec-WebSocket-Extensions offer. Returns the parameters of the first acceptable
// permessage-deflate offer and sets `response` to the header value to answer with, or nullopt
// (decline: answer without the extension) when there is none or every offer is malformed.
std::optional<ws_deflate_params> negotiate_permessage_deflate(std::string_view offers, std::string& response);

// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
std::string ws_accept_key(std::string_view client_key);

// Appends one frame to `out`. Server frames are unmasked (mask_key = nullopt); client frames must
// carry a masking key. rsv1 marks a compressed message's first frame.
void ws_encode_frame(std::string& out, ws_opcode op, std::string_view payload, bool fin = true, bool rsv1 = false,
                     std::optional<std::uint32_t> mask_key = std::nullopt);

// Limits the decoder enforces. A plain value type.
struct ws_limits {
  std::size_t max_frame = 1 << 20;     // payload of one frame (1009 beyond)
  std::size_t max_message = 1 << 20;   // a whole message, after decompression (1009 beyond)
};

// permessage-deflate state for one connection (zlib raw deflate, streams allocated on first use).
// Not thread-safe.
class ws_deflate {
 public:
  explicit ws_deflate(ws_deflate_params p);
  ~ws_deflate();
  ws_deflate(const ws_deflate&) = delete;
  ws_deflate& operator=(const ws_deflate&) = delete;
  // Compresses one message's payload into `out` (replacing it). Returns false on a zlib failure.
  bool compress(std::string_view in, std::string& out);
  // Decompresses one message's payload into `out` (replacing it). Returns false if the data is
  // not valid deflate or would exceed max_out bytes (`too_big` says which).
  bool decompress(std::string_view in, std::string& out, std::size_t max_out, bool& too_big);

 private:
  struct streams;
  ws_deflate_params params_;
  std::unique_ptr<streams> z_;
};

// Turns bytes from a peer into WebSocket events: whole messages (defragmented, decompressed,
// UTF-8-checked), control frames, or a protocol failure with the close code to send. No I/O.
// Not thread-safe.
class ws_decoder {
 public:
  struct event {
    enum class kind : std::uint8_t { message, ping, pong, close, fail } k = kind::message;
    ws_opcode op = ws_opcode::text;  // message: text or binary
    std::string data;                // message payload, ping/pong payload, close reason
    std::uint16_t code = 0;          // close: the peer's code (1005 if none); fail: the code to close with
  };

  // require_mask: frames must be masked (a server decoding a client). deflate: permessage-deflate
  // was negotiated (may be null).
  ws_decoder(ws_limits limits, bool require_mask, ws_deflate* deflate) noexcept
      : limits_(limits), require_mask_(require_mask), deflate_(deflate) {}

  // Consumes whole frames from the front of `in`, appending an event for each completed message
  // and control frame. Returns the bytes consumed (a partial frame at the end is left: feed it
  // again with more bytes). Stops after a close or fail event; the decoder is then finished.
  std::size_t feed(std::string_view in, std::vector<event>& out);
  bool finished() const noexcept { return finished_; }

 private:
  ws_limits limits_;
  bool require_mask_;
  bool finished_ = false;
  bool in_message_ = false;
  bool compressed_ = false;
  ws_opcode message_op_ = ws_opcode::text;
  utf8_validator utf8_;
  std::string partial_;   // the message being assembled
  ws_deflate* deflate_;
};

// What a WebSocket upgrade request carries, for ws_options::accept: enough to authenticate the
// socket (query parameters, cookies, Origin, a token offered as a subprotocol) before it exists.
// A view: valid during the accept call only (it points into the request the connection is still
// parsing), so copy what the handler needs into ws_accept::state. Not thread-safe; the hook gets it
// on the connection's process and should not hand it elsewhere.
struct ws_request {
  // For the server (and tests): views `head` and `route_params`, which must outlive this object,
  // and reads the offered subprotocols from every Sec-WebSocket-Protocol header of `head`.
  ws_request(const request_head& head, const param_list& route_params, std::string peer = {});

  std::string_view path;                        // still percent-encoded, as matched by the router
  std::string_view query;                       // raw query string, without '?' ("" if none)
  const param_list& route_params;               // the route's ":name" parameters, decoded
  // The Sec-WebSocket-Protocol values offered, split on ',' and trimmed, in the client's order
  // (empty items dropped). ws_accept::subprotocol must be one of these, byte for byte.
  std::vector<std::string_view> subprotocols;
  // The value of the first header named `name` (any case), or "" if absent.
  std::string_view header(std::string_view name) const;
  std::string peer;                             // remote address "ip:port" ("" if unknown)

 private:
  const request_head* head_;
};

// The accept hook's answer. A plain value type; the default accepts with no subprotocol and no state.
struct ws_accept {
  // 0: accept. Else refuse the upgrade with this HTTP status (400-599, e.g. 403; another value is a
  // bug in the hook: refused with 500 and logged) and `refuse_body` as a text/plain body (a short
  // default when empty). The connection then closes: no WebSocket, no handler process.
  std::uint16_t refuse_status = 0;
  std::string refuse_body;
  // "" (answer without Sec-WebSocket-Protocol) or one of ws_request::subprotocols, which the 101
  // then names. Anything else is refused with 500 and logged: a client aborts on a protocol it did
  // not offer, so failing here points at the hook rather than at the client.
  std::string subprotocol;
  // Handed to the handler as ws::accepted() (e.g. the user a token authenticated): computed once
  // here instead of re-parsing the request in the handler. Moved, never copied, after the hook.
  std::any state;
};

// Options of one WebSocket route. A plain value type.
struct ws_options {
  ws_limits limits{};
  bool permessage_deflate = true;             // accept the extension when a client offers it
  std::vector<std::string> allowed_origins;   // empty: any Origin; else exact matches (others: 403)
  std::chrono::milliseconds ping_interval{30000};  // ping an idle peer this often
  std::chrono::milliseconds idle_timeout{75000};   // close (1001) after this long without any frame
  std::size_t max_send_buffer = 1 << 20;      // bytes queued for a slow reader before closing (1008)
  std::chrono::milliseconds send_timeout{10000};   // a blocked send waits at most this long (then 1008)
  // Bytes other processes may have pushed through ws::outbox() that the connection has not yet
  // taken (each message counts its payload plus ws_outbox::per_message_overhead). A push beyond
  // it closes the connection with 1008 (see ws_outbox::push). Never unlimited: 0 refuses every push.
  std::size_t max_outbox = 1 << 20;
  // Decides, once the upgrade request is valid (version, key, allowed_origins) and before the 101
  // is written, whether to accept the socket, which offered subprotocol to select and what state
  // to hand the handler (see ws_accept). Unset: every valid upgrade is accepted, no subprotocol.
  // Runs on the connection's process, so it must not block (it holds that scheduler thread and
  // has no way to wait on other processes); it may be called from any scheduler thread and
  // concurrently for different connections, so what it captures must be thread-safe. If it throws,
  // the upgrade is refused with 500 and the exception logged.
  std::function<ws_accept(const ws_request&)> accept;
};

namespace detail {
struct ws_state;
struct ws_outbox_core;
struct detached_outbox;
}

// A handle for pushing messages to one WebSocket connection from other processes: what a
// broadcast, a pub/sub fan-out or a channel pushes through. Get it from the connection's own
// process with ws::outbox() and hand copies to anyone.
//
// A pushed message is queued for the connection and written as one frame (text or binary, as
// pushed; compressed when permessage-deflate is on) by the connection's process while it is in
// ws::receive() or ws::receive_or_mail(): pushes need no code in the handler, and they never
// show up as mail (so a handler that stays out of receive() for long lets them pile up, and is
// cut as below). Pushes through one handle arrive in the order made; no order is kept between
// different pushers, or between pushes and the handler's own send().
//
// Bounded: the bytes queued are limited to ws_options::max_outbox (the connection holds at most
// that plus max_send_buffer and one message being written). A push that would exceed it is
// refused and cuts the connection: the client is too slow for what is sent to it, and since
// channel and LiveView clients cannot survive a lost message, nothing is dropped silently. The
// connection is closed with 1008 (policy violation), promptly even while its process is blocked in
// send(); what was queued is freed; the cut is counted (server::slow_clients_cut()) and logged
// once (part "web", warning: peer, path, limit). The handler sees receive() return nullopt with
// close_code() 1008 (or send() return false) and ends normally.
//
// Thread-safe: any process or thread may push through any copy at any time (copies share one
// queue). A handle may outlive its connection; it then refuses pushes. Cheap to copy (a shared
// pointer); default-constructed, it is connected to nothing and refuses every push.
class ws_outbox {
 public:
  // What each queued message counts beyond its payload (its bookkeeping), so that a flood of
  // empty messages is bounded too.
  static constexpr std::size_t per_message_overhead = 64;

  ws_outbox() noexcept = default;

  // Queues `m` (text or binary; `mailbox` is ignored) for the connection. Returns true if queued.
  // Returns false, queueing nothing, if the handle is empty, the connection is closed or closing,
  // or it was cut; or if this push would take the queued bytes past max_outbox: then this push
  // cuts the connection (see above). Never blocks on the connection; takes a mutex shared only
  // with the connection and other pushers for a few instructions.
  bool push(ws_message m) const;
  // push(ws_message::text(std::move(s))).
  bool push_text(std::string s) const;
  // push(ws_message::binary(std::move(s))).
  bool push_binary(std::string s) const;

  // True while pushes may succeed: false for an empty handle and once the connection is closed,
  // closing, or cut. (A push may still fail on the limit even when this is true.)
  bool is_open() const noexcept;
  // The bytes queued now and not yet taken by the connection (payloads plus overhead); never more
  // than max_outbox; 0 for an empty handle and after the connection ends.
  std::size_t queued_bytes() const noexcept;

 private:
  friend class ws;
  friend struct detail::detached_outbox;
  explicit ws_outbox(std::shared_ptr<detail::ws_outbox_core> c) noexcept : c_(std::move(c)) {}
  std::shared_ptr<detail::ws_outbox_core> c_;
};

// A WebSocket connection, owned by the process that handles it (not thread-safe; do not hand it
// to another process: its socket's readiness is delivered to the handler process alone). Control
// frames are answered inside receive(): pings get pongs, a close frame gets the closing reply.
class ws {
 public:
  explicit ws(std::unique_ptr<detail::ws_state> s) noexcept;
  ws(ws&&) noexcept;
  ws& operator=(ws&&) noexcept;
  ~ws();  // closes the connection if still open (1000; 1011 when unwinding an exception; 1008 when cut)

  // Waits for the next text or binary message. Returns nullopt once the connection is closed (by
  // the peer, a protocol error, the idle timeout, server shutdown, or a cut outbox: 1008;
  // close_code() says which). Messages pushed through outbox() are written meanwhile.
  task<std::optional<ws_message>> receive();
  // Like receive(), but also returns early (a ws_message with mailbox == true and no data) while a
  // process message is waiting: the handler takes it with its own receive. For handlers that
  // combine the socket with messages from other processes (broadcasts, pub/sub). Take messages
  // by their types (receive<T>, receive_for<T>), never with receive_any(): the outbox's doorbell
  // is a message in the same mailbox, and a handler that takes it leaves later pushes unwritten.
  task<std::optional<ws_message>> receive_or_mail();

  // Sends a message. Returns true if it was written or queued; false if the connection is closed
  // or was closed now because the peer does not read (more than max_send_buffer queued for
  // longer than send_timeout, or the outbox was cut meanwhile: close code 1008).
  task<bool> send(ws_message m);
  task<bool> send_text(std::string s);
  task<bool> send_binary(std::string s);
  // Sends a ping (a pong is answered inside receive()). Returns false if closed.
  task<bool> ping(std::string payload = {});
  // Starts the close handshake with `code` and waits (briefly) for the peer's reply, then closes.
  task<void> close(std::uint16_t code = ws_close::normal, std::string reason = {});

  bool is_open() const noexcept;
  // How the connection ended: the peer's close code, the code we sent, or 1006 (no close frame).
  std::uint16_t close_code() const noexcept;
  // The upgrade request's path, query string and route parameters (":name").
  const std::string& path() const noexcept;
  const std::string& query() const noexcept;
  std::string param(std::string_view name) const;
  // What ws_options::accept returned in ws_accept::state: an empty std::any when the route has no
  // hook or the hook left it empty. Mutable so the handler may move it out; lives as long as the
  // connection object.
  std::any& accepted() noexcept;
  // The subprotocol selected in the 101 (ws_accept::subprotocol); "" if none.
  std::string_view subprotocol() const noexcept;
  // True if permessage-deflate is in use on this connection.
  bool compressed() const noexcept;
  // A handle through which other processes push messages to this connection (see ws_outbox);
  // every call returns a handle to the same queue. Call it from this connection's process (its
  // handler): pushes wake that process. After the connection has closed, the handle refuses pushes.
  ws_outbox outbox();

  // Internal: the connection state (for the server).
  detail::ws_state* state() noexcept { return s_.get(); }

 private:
  std::unique_ptr<detail::ws_state> s_;
};

}  // namespace athanor::web
