// test_socket (channel_test.h): a socket session (channel.cpp) with no transport, driven from a
// test's process. The session is the detached kind LongPoll uses (socket_internal.h); the test's
// process plays the client: it sends the session encoded frames and polls it for what came back,
// decoding each frame as the official client would. The waits are polls the session holds until a
// frame arrives, so a test waits for exactly as long as its channel takes.
#include "athanor/web/channel_test.h"

#include <chrono>

#include "athanor/runtime/process.h"
#include "web/socket_internal.h"

namespace athanor::web {

namespace {
using clock = std::chrono::steady_clock;

// The time left until `deadline`, never negative.
test_socket::duration left(clock::time_point deadline) {
  const auto d = std::chrono::ceil<test_socket::duration>(deadline - clock::now());
  return d.count() < 0 ? test_socket::duration(0) : d;
}

test_socket::reply reply_of(const channel_message& m) {
  test_socket::reply r;
  if (const term* status = m.payload.is_map() ? m.payload.find(term("status")) : nullptr; status && status->is_binary())
    r.status = std::string(status->as_binary());
  if (const term* response = m.payload.is_map() ? m.payload.find(term("response")) : nullptr) r.response = *response;
  return r;
}
}  // namespace

test_socket::test_socket(const socket_handler& handler, term assigns) {
  detail::detached_socket_options opts;
  opts.owner = self();
  opts.path = handler.routes()->path + " (test_socket)";
  session_ = detail::spawn_detached_socket(handler.routes(), std::move(assigns), std::move(opts));
}

test_socket::~test_socket() { close(); }

void test_socket::close() {
  if (!session_) return;
  send(session_, detail::socket_close{});
  session_ = pid();
}

void test_socket::send_frame(const channel_message& m) {
  if (!session_) return;
  ws_message frame;
  if (is_binary_payload(m.payload)) {
    frame = ws_message::binary(encode_channel_binary(m));
  } else {
    frame = ws_message::text(encode_channel_message(m));
  }
  send(session_, detail::socket_frames_in{{std::move(frame)}});
}

task<bool> test_socket::poll(duration hold) {
  if (!session_) co_return false;
  process& self = this_process();
  const std::uint64_t id = ++next_poll_;
  send(session_, detail::socket_poll{self.self(), id, hold});
  // The session answers by the end of the hold; the slack covers a loaded machine. No answer at
  // all means the session is gone.
  std::optional<detail::socket_poll_answer> answer = co_await self.receive(
      on<detail::socket_poll_answer>([id](const detail::socket_poll_answer& a) { return a.id == id; },
                                     [](detail::socket_poll_answer& a) { return std::optional(std::move(a)); }),
      after(hold + std::chrono::seconds(5), [] { return std::optional<detail::socket_poll_answer>(); }));
  if (!answer) co_return false;
  for (ws_message& f : answer->frames) {
    try {
      inbox_.push_back(f.type == ws_opcode::text ? decode_channel_message(f.data) : decode_server_channel_binary(f.data));
    } catch (const channel_message_error&) {
      // The server never writes a frame the client cannot read; a test would see it missing.
    }
  }
  co_return true;
}

template <class Pred>
task<std::optional<channel_message>> test_socket::take(Pred pred, duration timeout) {
  const clock::time_point deadline = clock::now() + timeout;
  for (;;) {
    for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
      if (pred(*it)) {
        channel_message m = std::move(*it);
        inbox_.erase(it);
        co_return m;
      }
    }
    const duration hold = left(deadline);
    if (!co_await poll(hold) || hold.count() == 0) co_return std::nullopt;
  }
}

task<std::optional<test_socket::reply>> test_socket::join(std::string topic, term params, duration timeout) {
  const std::string ref = std::to_string(++next_ref_);
  join_refs_[topic] = ref;
  send_frame(channel_message{ref, ref, topic, "phx_join", std::move(params)});
  std::optional<channel_message> m = co_await take(
      [&](const channel_message& x) { return x.event == "phx_reply" && x.topic == topic && x.ref == ref; }, timeout);
  if (!m) co_return std::nullopt;
  co_return reply_of(*m);
}

std::string test_socket::push(std::string_view topic, std::string_view event, const term& payload) {
  const std::string ref = std::to_string(++next_ref_);
  auto jr = join_refs_.find(std::string(topic));
  send_frame(channel_message{jr == join_refs_.end() ? std::nullopt : std::optional<std::string>(jr->second), ref,
                             std::string(topic), std::string(event), payload});
  return ref;
}

task<std::optional<test_socket::reply>> test_socket::reply_to(std::string ref, duration timeout) {
  std::optional<channel_message> m =
      co_await take([&](const channel_message& x) { return x.event == "phx_reply" && x.ref == ref; }, timeout);
  if (!m) co_return std::nullopt;
  co_return reply_of(*m);
}

task<std::optional<term>> test_socket::pushed(std::string topic, std::string event, duration timeout) {
  std::optional<channel_message> m =
      co_await take([&](const channel_message& x) { return x.topic == topic && x.event == event; }, timeout);
  if (!m) co_return std::nullopt;
  co_return std::move(m->payload);
}

task<std::optional<test_socket::reply>> test_socket::leave(std::string topic, duration timeout) {
  std::string ref = push(topic, "phx_leave", map({}));
  join_refs_.erase(topic);
  co_return co_await reply_to(std::move(ref), timeout);
}

task<std::vector<channel_message>> test_socket::received(duration wait) {
  (void)co_await poll(wait);
  std::vector<channel_message> all(std::make_move_iterator(inbox_.begin()), std::make_move_iterator(inbox_.end()));
  inbox_.clear();
  co_return all;
}

}  // namespace athanor::web
