// What every Athanor command-line tool (tools/*, athanor-bench) does the same way: a mistake is
// one line on stderr naming the tool and saying "try --help", exit status 2; numbers are plain
// decimal text in a stated range. Header-only (each tool is one translation unit). Thread-safe:
// pure functions, apart from writing to stderr.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace athanor::tools {

// Prints "<tool>: <message>; try --help" on stderr. Returns 2, the exit status for a command-line
// mistake, so that main() can `return usage_error(...)`.
inline int usage_error(std::string_view tool, const std::string& message) {
  std::fprintf(stderr, "%.*s: %s; try --help\n", int(tool.size()), tool.data(), message.c_str());
  return 2;
}

// `text` as a decimal integer (digits only, at most 18) in [min, max], or nullopt.
inline std::optional<std::uint64_t> parse_integer(std::string_view text, std::uint64_t min, std::uint64_t max) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const std::uint64_t n = std::strtoull(std::string(text).c_str(), nullptr, 10);
  if (n < min || n > max) return std::nullopt;
  return n;
}

// `text` as a decimal number (digits and at most one '.') in [min, max], or nullopt.
inline std::optional<double> parse_decimal(std::string_view text, double min, double max) {
  if (text.empty() || text.size() > 32 || text.find_first_not_of("0123456789.") != std::string_view::npos ||
      text.find('.') != text.rfind('.') || text == ".") {
    return std::nullopt;
  }
  const double n = std::strtod(std::string(text).c_str(), nullptr);
  if (n < min || n > max) return std::nullopt;
  return n;
}

// True if argv[1..argc) holds --help or -h before any "--": tools answer it first, whatever the
// environment or the other flags hold.
inline bool asks_for_help(int argc, char** argv) {
  for (int i = 1; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return true;
  }
  return false;
}

}  // namespace athanor::tools
