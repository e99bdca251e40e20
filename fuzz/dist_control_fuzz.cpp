// libFuzzer target for distribution packets (see fuzz/README.md): read_packet() on arbitrary
// bytes must either return a message whose control tuple has its opcode's shape or throw
// protocol_error; a message it returns must write back in either mode (pass-through, header)
// and read back to the same message. (Sequences of packets, with the atom cache and fragments:
// dist_fragments_fuzz.)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "athanor/dist/control.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace athanor;
  etf::decode_options options;
  options.safe = true;  // as a node reads a peer: no new atoms from garbage
  options.context.node_number = [](const etf::node_identity&) -> std::optional<std::uint32_t> { return 1; };
  const auto bytes = std::span(reinterpret_cast<const std::byte*>(data), size);
  dist::message m;
  try {
    m = dist::read_packet(bytes, options);
  } catch (const dist::protocol_error&) {
    return 0;
  }
  etf::encode_options eo;
  eo.context.node_name = [](std::uint32_t) -> std::optional<etf::node_identity> {
    return etf::node_identity{athanor::atom("peer@host"), 1};
  };
  std::vector<std::byte> out;
  try {
    dist::write_packet(out, m.control, m.payload ? &*m.payload : nullptr, eo);
  } catch (const etf::etf_error&) {
    return 0;  // e.g. a term that decodes but cannot be encoded again by this context
  }
  etf::decode_options again = options;
  again.safe = false;
  for (const dist::packet_mode mode : {dist::packet_mode::pass_through, dist::packet_mode::header}) {
    out.clear();
    dist::write_packet(out, mode, m.control, m.payload ? &*m.payload : nullptr, eo);
    dist::message back = dist::read_packet(std::span(out).subspan(4), again);
    if (back.op != m.op || back.payload.has_value() != m.payload.has_value()) {
      std::fprintf(stderr, "a written packet read back differently\n");
      std::abort();
    }
  }
  return 0;
}
