// libFuzzer target for athanor::parse_settings, the node config file reader (see fuzz/README.md).
//
// Reads arbitrary bytes as a config file. Reading must never crash: the text is either settings
// or one config_error. Accepted settings must survive being merged over empty ones unchanged, and
// converting them to a runtime_config must not throw; any mismatch aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "athanor/runtime/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  athanor::node_settings s;
  try {
    s = athanor::parse_settings(text, "fuzz.config");
  } catch (const athanor::config_error&) {
    return 0;  // rejected input: fine, as long as it did not crash
  }
  if (!(athanor::merge_settings({}, s) == s)) {
    std::fprintf(stderr, "merging accepted settings over nothing changed them\n");
    std::abort();
  }
  (void)athanor::to_runtime_config(s);
  return 0;
}
