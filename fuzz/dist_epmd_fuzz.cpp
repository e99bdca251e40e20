// libFuzzer target: the EPMD wire parsers (athanor/dist/epmd_wire.h) on arbitrary bytes: requests
// whole and by body, ALIVE2, PORT2 and NAMES replies. Invariants checked (abort on failure): a
// parser either returns a value or throws epmd_error (anything else escapes and is a crash); an
// accepted value encodes without error and parses back to itself; an accepted request or reply
// re-encodes to the same bytes, except a PORT_PLEASE2 name whose ending NUL the parser drops; the
// ALIVE2 reply size agrees with the parser; every accepted name passes is_valid_epmd_name.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "athanor/dist/epmd_wire.h"

using namespace athanor::dist;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void requests(std::string_view in) {
  try {
    epmd_request r = parse_epmd_request_body(in);
    std::string again = encode_epmd_request(r);
    check(parse_epmd_request(again) == r);
    bool dropped_nul = std::holds_alternative<port_please2_request>(r) && !in.empty() && in.back() == '\0';
    check(dropped_nul ? std::string_view(again).substr(2) == in.substr(0, in.size() - 1)
                      : std::string_view(again).substr(2) == in);
    if (auto* a = std::get_if<alive2_request>(&r)) check(is_valid_epmd_name(a->node.name));
    if (auto* p = std::get_if<port_please2_request>(&r)) check(is_valid_epmd_name(p->name));
  } catch (const epmd_error&) {
  }
  try {
    epmd_request r = parse_epmd_request(in);
    check(parse_epmd_request(encode_epmd_request(r)) == r);
  } catch (const epmd_error&) {
  }
}

void replies(std::string_view in) {
  try {
    alive2_response r = parse_alive2_response(in);
    check(alive2_response_size(std::uint8_t(in[0])) == in.size());
    check(encode_epmd_response(r) == in);
  } catch (const epmd_error&) {
  }
  try {
    port2_response r = parse_port2_response(in);
    if (r.node) {
      check(is_valid_epmd_name(r.node->name));
      check(encode_epmd_response(r) == in);
    }
    check(parse_port2_response(encode_epmd_response(r)) == r);
  } catch (const epmd_error&) {
  }
  try {
    names_response r = parse_names_response(in);
    for (const auto& e : r.nodes) check(is_valid_epmd_name(e.name));
    check(encode_epmd_response(r) == in);
  } catch (const epmd_error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  requests(in);
  replies(in);
  (void)is_valid_epmd_name(in);
  return 0;
}
