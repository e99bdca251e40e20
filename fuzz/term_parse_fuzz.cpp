// libFuzzer target for athanor::parse_term (see fuzz/README.md).
//
// Parses arbitrary text. Parsing must never crash; when it succeeds, printing the term (both
// to_string() and the ~w form) and parsing that again must give an equal term (=:=); any
// mismatch aborts, which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "athanor/term/parse.h"

namespace {

void check_reparse(const athanor::term& t, const std::string& printed) {
  athanor::term again;
  try {
    again = athanor::parse_term(printed);
  } catch (const athanor::parse_error& e) {
    std::fprintf(stderr, "re-parsing %s failed: %s\n", printed.c_str(), e.what());
    std::abort();
  }
  if (!(again == t)) {
    std::fprintf(stderr, "re-parsing %s gave %s\n", printed.c_str(), again.to_string().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  athanor::parse_options options;
  options.max_depth = 200;
  // Mostly existing atoms only, so a long run does not fill the atom table (never freed).
  options.existing_atoms_only = size == 0 || (data[0] & 7) != 0;
  try {
    const athanor::term t = athanor::parse_term(text, options);
    check_reparse(t, t.to_string());
    check_reparse(t, t.to_string_w());
  } catch (const athanor::parse_error&) {
    // Rejected text: fine, as long as it did not crash.
  }
  return 0;
}
