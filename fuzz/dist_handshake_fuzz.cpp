// libFuzzer target: the distribution handshake (athanor/dist/handshake.h) on arbitrary bytes.
// Every decoder and next_frame get the input as a message body; then both state machines, the
// acceptor and the initiator, are fed it as the stream from their peer, once whole and once in
// pieces, each with the settings of the verified OTP transcript (cookie "X", fixed challenges),
// so that seeds made from that transcript (see fuzz/README.md) reach every step up to
// "connected". Invariants checked (abort on failure):
//  * decoders and next_frame throw nothing but handshake_error; a frame never extends past the
//    input or over the size limit;
//  * a machine ends in the same state, with the same failure, the same bytes written and the
//    same unread bytes whether the input arrives at once or in pieces (except that a peer
//    flooding while the caller decides may be cut off in one run and not the other);
//  * machines write whole frames only; a connected machine has a peer name that parse_peer
//    accepts, and the acceptor's last message is the 17-byte ack; a wrong digest is met with
//    silence (nothing written after our challenge, or our reply);
//  * once connected or failed, a machine stays so, whatever it is fed; end_of_input() on an
//    unfinished machine fails it with peer_closed.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "athanor/dist/handshake.h"

using namespace athanor::dist;

namespace {

using bytes = std::vector<std::byte>;

handshake_settings settings(const char* name, std::uint32_t creation, std::uint64_t flags, std::uint32_t challenge,
                            framing f) {
  return {.name = node_name::parse(name),
          .creation = creation,
          .cookie = cookie("X"),
          .flags = flags,
          .framing = f,
          .challenge_source = [challenge] { return challenge; }};
}

struct run_result {
  handshake_state state;
  handshake_failure failure;
  bytes written;
  bytes unread;
};

template <class Machine, class Answer>
run_result run(Machine& m, std::span<const std::byte> in, std::size_t step, Answer&& answer) {
  run_result r{};
  for (std::size_t pos = 0; pos < in.size(); pos += step) {
    bytes out;
    m.feed(in.subspan(pos, std::min(step, in.size() - pos)), out);
    if (m.state() == handshake_state::awaiting_decision) answer(m, out);
    r.written.insert(r.written.end(), out.begin(), out.end());
    if (m.state() == handshake_state::connected || m.state() == handshake_state::failed) break;
  }
  r.state = m.state();
  r.failure = m.failure();
  if (r.state == handshake_state::connected) r.unread = m.outcome().unread;
  return r;
}

void check_same(const run_result& a, const run_result& b) {
  // The one legitimate difference: bytes a peer sends while the caller decides are bounded by
  // one message's worth, and whether they arrive before or after the answer depends on how the
  // input is cut. Both runs must still end without a crash.
  auto flooded = [](const run_result& r) {
    return r.state == handshake_state::failed && r.failure == handshake_failure::message_too_large;
  };
  if (flooded(a) != flooded(b)) return;
  if (a.state != b.state || a.written != b.written) std::abort();
  if (a.state == handshake_state::failed && a.failure != b.failure) std::abort();
  // Split input stops at the piece that connected: its unread bytes are the rest of that piece
  // only, a prefix of the whole run's.
  if (a.state == handshake_state::connected &&
      (b.unread.size() > a.unread.size() || !std::equal(b.unread.begin(), b.unread.end(), a.unread.begin())))
    std::abort();
}

// The tag of the last whole frame in `written` (0 if none).
char last_tag(const bytes& written, framing f) {
  std::span<const std::byte> rest(written);
  char tag = 0;
  while (auto fr = next_frame(rest, f, 1 << 16)) {
    tag = fr->body.empty() ? 0 : char(fr->body[0]);
    rest = rest.subspan(fr->size);
  }
  if (!rest.empty()) std::abort();  // a machine never writes part of a frame
  return tag;
}

// `reply_tag`: the last message this role sends before it checks the peer's digest.
template <class Machine>
void check_final(Machine& m, const run_result& r, framing f, char reply_tag) {
  if (r.state == handshake_state::connected) {
    node_name::parse_peer(m.outcome().peer.full());  // throws (a crash) if the name is not one
  }
  // A wrong digest is answered by silence: nothing after our challenge (or reply).
  if (r.state == handshake_state::failed && r.failure == handshake_failure::bad_digest && last_tag(r.written, f) != reply_tag)
    std::abort();
  if (r.state == handshake_state::connected || r.state == handshake_state::failed) {
    bytes out;
    handshake_state before = r.state;
    bytes again = {std::byte(0), std::byte(3), std::byte('s'), std::byte('o'), std::byte('k')};
    if (m.feed(again, out) != before || !out.empty() || m.end_of_input() != before) std::abort();
  } else {
    if (m.end_of_input() != handshake_state::failed || m.failure() != handshake_failure::peer_closed) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t knob = data[0];
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  const framing f = (knob & 1) ? framing::four_byte_length : framing::two_byte_length;
  const std::size_t step = std::size_t(knob >> 4) + 1;

  // Decoders and framing on the raw bytes.
  try { decode_send_name(in); } catch (const handshake_error&) {}
  try { decode_status(in); } catch (const handshake_error&) {}
  try { decode_alive_reply(in); } catch (const handshake_error&) {}
  try { decode_challenge(in); } catch (const handshake_error&) {}
  try { decode_challenge_reply(in); } catch (const handshake_error&) {}
  try { decode_challenge_ack(in); } catch (const handshake_error&) {}
  try {
    if (auto fr = next_frame(in, f, 64)) {
      if (fr->size > in.size() || fr->body.size() > 64 || fr->body.data() < in.data()) std::abort();
    }
  } catch (const handshake_error&) {
  }

  // The acceptor as py@vm of the transcript, answering the status the knob picks.
  static constexpr handshake_status kStatuses[] = {handshake_status::ok, handshake_status::ok_simultaneous,
                                                   handshake_status::alive, handshake_status::nok,
                                                   handshake_status::not_allowed};
  const handshake_status status = kStatuses[(knob >> 1) % 5];
  auto answer = [&](handshake_acceptor& m, bytes& out) { m.answer(status, out); };
  {
    handshake_acceptor whole(settings("py@vm", 0x6b070d92, 0xc07470fbc, 0x3459f644, f));
    handshake_acceptor split(settings("py@vm", 0x6b070d92, 0xc07470fbc, 0x3459f644, f));
    run_result a = run(whole, in, in.size() ? in.size() : 1, answer);
    run_result b = run(split, in, step, answer);
    check_same(a, b);
    check_final(whole, a, f, 'N');
    if (a.state == handshake_state::connected && last_tag(a.written, f) != 'a') std::abort();
  }

  // The initiator as a@vm of the transcript, dialling py@vm; the knob answers "alive".
  const bool replace = knob & 2;
  auto answer_alive = [&](handshake_initiator& m, bytes& out) { m.answer_alive(replace, out); };
  {
    handshake_initiator whole(settings("a@vm", 0x6b070ce4, 0xd07df7fbd, 0xc27aa1b5, f), node_name::parse("py@vm"));
    handshake_initiator split(settings("a@vm", 0x6b070ce4, 0xd07df7fbd, 0xc27aa1b5, f), node_name::parse("py@vm"));
    bytes first_whole, first_split;
    whole.start(first_whole);
    split.start(first_split);
    if (first_whole != first_split) std::abort();
    run_result a = run(whole, in, in.size() ? in.size() : 1, answer_alive);
    run_result b = run(split, in, step, answer_alive);
    check_same(a, b);
    check_final(whole, a, f, 'r');
    if (a.state == handshake_state::connected && whole.outcome().peer.full() != "py@vm") std::abort();
  }
  return 0;
}
