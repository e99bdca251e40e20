// libFuzzer target for a connection's receiving side (see fuzz/README.md): a dist::packet_reader
// fed a sequence of arbitrary packets, as a peer would send them.
//
// Input: byte 0 picks the negotiated flags (bits 0-1: pass-through, FRAGMENTS, DIST_HDR_ATOM_CACHE
// or both), safe mode (off only when bits 3-5 are 0, so a long run does not fill the atom table),
// and the fragment size used to send messages back (bits 6-7); then packets, each a length byte
// and that many bytes.
//
// Checks: feed() returns a message, nothing (a fragment buffered) or throws protocol_error, after
// which the connection would close, so the run stops; the reader never holds more sequences or
// bytes than its limits; a whole 131 68 0 or pass-through packet reads as read_packet reads it;
// and every message it returns, written back in header mode and split into fragments by
// fragment_writer, reads back through a fresh reader as the same message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "athanor/dist/control.h"
#include "athanor/dist/handshake.h"

namespace {

using namespace athanor;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "%s\n", what);
  std::abort();
}

bool same(const dist::message& a, const dist::message& b) {
  return a.op == b.op && a.control == b.control && a.payload.has_value() == b.payload.has_value() &&
         (!a.payload || *a.payload == *b.payload);
}

// Writes `m` in header mode, sends it as fragments of `max_fragment` bytes through a fresh
// reader, and aborts unless the same message comes out of the last packet.
void check_round_trip(const dist::message& m, std::size_t max_fragment, const etf::decode_options& options) {
  etf::encode_options eo;
  eo.context.node_name = [](std::uint32_t) -> std::optional<etf::node_identity> {
    return etf::node_identity{atom("peer@host"), 1};
  };
  std::vector<std::byte> packet;
  try {
    dist::write_packet(packet, dist::packet_mode::header, m.control, m.payload ? &*m.payload : nullptr, eo);
  } catch (const etf::etf_error&) {
    return;  // a term that decodes but that this context cannot encode again
  }
  dist::fragment_writer writer(std::move(packet), 42, max_fragment);
  dist::packet_reader back(dist::dflag::recommended_hidden | dist::dflag::fragments);
  std::optional<dist::message> got;
  while (!writer.done()) {
    if (got) fail("a message completed before its last fragment");
    const dist::fragment_writer::fragment f = writer.next();
    std::vector<std::byte> whole(f.header().begin() + 4, f.header().end());
    whole.insert(whole.end(), f.body.begin(), f.body.end());
    got = back.feed(whole, options);
  }
  if (!got || !same(*got, m)) fail("a message written back in fragments read back differently");
  if (back.pending_sequences() != 0 || back.buffered_bytes() != 0) fail("a completed sequence left state behind");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t setup = data[0];
  static constexpr std::uint64_t kFlags[] = {
      dist::dflag::recommended_hidden,
      dist::dflag::recommended_hidden | dist::dflag::fragments,
      dist::dflag::recommended_hidden | dist::dflag::dist_hdr_atom_cache,
      dist::dflag::recommended_hidden | dist::dflag::fragments | dist::dflag::dist_hdr_atom_cache,
  };
  static constexpr std::size_t kFragmentSizes[] = {1, 7, 64, 65536};
  dist::reader_limits limits;
  limits.max_message_bytes = 2048;
  limits.max_sequences = 4;
  limits.max_buffered_bytes = 4096;
  dist::packet_reader reader(kFlags[setup & 3], limits);
  etf::decode_options options;
  options.safe = (setup & 0x38) != 0;
  options.context.node_number = [](const etf::node_identity&) -> std::optional<std::uint32_t> { return 1; };
  const std::size_t max_fragment = kFragmentSizes[setup >> 6];

  std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  while (!rest.empty()) {
    const std::size_t n = std::min<std::size_t>(std::size_t(rest[0]), rest.size() - 1);
    const std::span<const std::byte> packet = rest.subspan(1, n);
    rest = rest.subspan(1 + n);
    // The stateless reader's answer for packets it can read alone, to compare with.
    std::optional<dist::message> stateless;
    const bool whole_without_cache =
        (reader.mode() == dist::packet_mode::pass_through && !packet.empty() && packet[0] == std::byte{112}) ||
        (reader.mode() == dist::packet_mode::header && packet.size() >= 3 && packet[0] == std::byte{131} &&
         packet[1] == std::byte{68} && packet[2] == std::byte{0});
    if (whole_without_cache) {
      try {
        stateless = dist::read_packet(packet, options);
      } catch (const dist::protocol_error&) {
      }
    }
    std::optional<dist::message> m;
    try {
      m = reader.feed(packet, options);
    } catch (const dist::protocol_error&) {
      if (stateless) fail("packet_reader refused a packet read_packet reads");
      return 0;  // the connection would close here
    }
    if (reader.pending_sequences() > limits.max_sequences) fail("more sequences than max_sequences");
    if (reader.buffered_bytes() > limits.max_buffered_bytes) fail("more bytes than max_buffered_bytes");
    if (whole_without_cache && (!m || !stateless || !same(*m, *stateless))) {
      fail("packet_reader and read_packet read a whole packet differently");
    }
    if (m) check_round_trip(*m, max_fragment, options);
  }
  return 0;
}
