// libFuzzer target for the ETF decoder (see fuzz/README.md).
//
// Decodes arbitrary bytes, in normal and safe mode. When decoding succeeds it encodes the
// term again (with both minor versions), decodes that, and checks the result is the same
// term (=:=), then keeps a part of it past the whole; any mismatch aborts, which libFuzzer
// reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "athanor/term/etf.h"

namespace {

void check_round_trip(const athanor::term& t, int minor_version) {
  using namespace athanor;
  etf::encode_options eo;
  eo.minor_version = minor_version;
  const std::vector<std::byte> bytes = etf::encode(t, eo);
  term again;
  try {
    again = etf::decode(bytes);
  } catch (const etf::etf_error& e) {
    std::fprintf(stderr, "re-decoding our own encoding failed: %s\n", e.what());
    std::abort();
  }
  if (!(again == t)) {
    std::fprintf(stderr, "round trip changed the term\n");
    std::abort();
  }
  // Our encoding is canonical: encoding the decoded term again gives the same bytes.
  if (etf::encode(again, eo) != bytes) {
    std::fprintf(stderr, "re-encoding is not stable\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace athanor;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  // Small limits keep each run fast; the defaults are exercised by the unit tests.
  etf::decode_options options;
  options.max_depth = 1000;
  options.max_decompressed_bytes = 1 << 20;
  options.safe = size > 0 && (data[size - 1] & 1);  // both modes, chosen by the input
  try {
    term t = etf::decode(input, options);
    check_round_trip(t, 1);
    check_round_trip(t, 2);
    // A decoded message is one block its parts share: a part must outlive the whole.
    term part;
    if (t.is_tuple() && t.tuple_size() > 0) part = t.element(t.tuple_size() - 1);
    if (t.kind() == term::kind::list) part = t.tail();  // a cell, not []
    if (t.is_map() && t.map_size() > 0) part = t.map_entries().back().second;
    const std::vector<std::byte> expected = etf::encode(part);
    t = term();
    if (etf::encode(part) != expected || etf::encode(part.unshared()) != expected) {
      std::fprintf(stderr, "a part changed when the message it came from was dropped, or in a deep copy\n");
      std::abort();
    }
  } catch (const etf::etf_error&) {
    // Rejected input: fine, as long as it did not crash.
  }
  try {
    (void)etf::decode_prefix(input, options);
  } catch (const etf::etf_error&) {
  }
  return 0;
}
