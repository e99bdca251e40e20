// libFuzzer target for athanor::json::decode (see fuzz/README.md).
//
// Decodes arbitrary bytes. Decoding must never crash; when it succeeds, encoding the term
// (every decoded term has a JSON form) and decoding that again must give the same term,
// and encoding must be stable; any mismatch aborts, which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "athanor/term/json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  athanor::term t;
  try {
    t = athanor::json::decode(text);
  } catch (const athanor::json::json_error&) {
    return 0;  // rejected input: fine, as long as it did not crash
  }
  std::string encoded;
  try {
    encoded = athanor::json::encode(t);
  } catch (const athanor::json::json_error& e) {
    std::fprintf(stderr, "a decoded term does not encode: %s\n", e.what());
    std::abort();
  }
  const athanor::term again = athanor::json::decode(encoded);
  if (!(again == t) || athanor::json::encode(again) != encoded) {
    std::fprintf(stderr, "round trip changed %s\n", encoded.c_str());
    std::abort();
  }
  return 0;
}
