// athanor-term: converts terms between Erlang syntax and the External Term Format.
//
//   echo '{ok, [1,2,3], <<"hi">>}' | athanor-term encode --hex   # 836803640002...
//   athanor-term encode < term.txt > term.etf                        # == term_to_binary/1
//   athanor-term decode < term.etf                                   # as io:format("~w~n")
//   echo 8364000268 69 | athanor-term decode --hex                   # hi
//
// Exit status: 0 on success, 2 on bad input or usage (one line on stderr), 1 if writing fails.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "athanor/term/etf.h"
#include "athanor/term/parse.h"

namespace {

constexpr const char* kUsage =
    "Usage: athanor-term encode|decode [--hex]\n"
    "\n"
    "  encode   read one term in Erlang syntax on stdin (a final '.' is optional), write its\n"
    "           External Term Format bytes on stdout, exactly as term_to_binary/1 would\n"
    "  decode   read External Term Format bytes on stdin, write the term on stdout as\n"
    "           io:format(\"~w~n\", [T]) would\n"
    "  --hex    the bytes are hex text (encode writes it with a newline; decode ignores\n"
    "           whitespace in it)\n"
    "  --help   this text\n"
    "\n"
    "Exit status: 0 on success (and for --help), 2 on bad input or usage (with a one-line error\n"
    "on stderr), 1 if writing fails.\n"
    "Pids, ports and references of this node use node 'nonode@nohost', as a plain erl does;\n"
    "decode numbers other nodes 1, 2, ... in the order they appear.\n";

int fail(const std::string& message) {
  std::string line = message;
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  std::fprintf(stderr, "athanor-term: %s\n", line.c_str());
  return 2;
}

std::string read_all(std::FILE* in) {
  std::string data;
  char buffer[65536];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, in)) > 0) data.append(buffer, n);
  return data;
}

bool write_all(const void* data, std::size_t size) {
  return std::fwrite(data, 1, size, stdout) == size && std::fflush(stdout) == 0;
}

// Returns the bytes written as hex text (whitespace ignored), or an error message in `error`.
std::vector<std::byte> from_hex(const std::string& text, std::string& error) {
  std::vector<std::byte> out;
  int high = -1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else {
      error = "not a hex digit at offset " + std::to_string(i) + " of the input";
      return {};
    }
    if (high < 0) {
      high = v;
    } else {
      out.push_back(std::byte(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) error = "odd number of hex digits";
  return out;
}

int encode(bool hex) {
  const std::string text = read_all(stdin);
  std::vector<std::byte> bytes;
  try {
    bytes = athanor::etf::encode(athanor::parse_term(text));
  } catch (const athanor::parse_error& e) {
    return fail(e.what());
  } catch (const athanor::etf::etf_error& e) {
    return fail(e.what());
  }
  if (!hex) return write_all(bytes.data(), bytes.size()) ? 0 : 1;
  std::string out;
  out.reserve(bytes.size() * 2 + 1);
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::byte b : bytes) {
    out += kDigits[std::to_integer<unsigned>(b) >> 4];
    out += kDigits[std::to_integer<unsigned>(b) & 15];
  }
  out += '\n';
  return write_all(out.data(), out.size()) ? 0 : 1;
}

int decode(bool hex) {
  const std::string data = read_all(stdin);
  std::vector<std::byte> bytes;
  if (hex) {
    std::string error;
    bytes = from_hex(data, error);
    if (!error.empty()) return fail(error);
  } else {
    const auto* p = reinterpret_cast<const std::byte*>(data.data());
    bytes.assign(p, p + data.size());
  }
  // Other nodes get numbers in the order they appear (the names are not printed by ~w either).
  std::map<std::pair<std::string, std::uint32_t>, std::uint32_t> nodes;
  athanor::etf::decode_options options;
  options.context.node_number = [&](const athanor::etf::node_identity& id) -> std::optional<std::uint32_t> {
    const auto key = std::make_pair(std::string(id.name.name()), id.creation);
    auto it = nodes.find(key);
    if (it != nodes.end()) return it->second;
    const auto n = std::uint32_t(nodes.size() + 1);
    if (n > athanor::pid::kNodeMask) return std::nullopt;
    nodes.emplace(key, n);
    return n;
  };
  try {
    const std::string out = athanor::etf::decode(bytes, options).to_string_w() + "\n";
    return write_all(out.data(), out.size()) ? 0 : 1;
  } catch (const athanor::etf::etf_error& e) {
    return fail(e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string command;
  bool hex = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--hex") {
      hex = true;
    } else if (command.empty() && (arg == "encode" || arg == "decode")) {
      command = arg;
    } else {
      const char* what = arg.starts_with("-")  ? "unknown flag"
                         : command.empty()   ? "unknown command"
                                             : "unexpected argument";
      return fail(std::string(what) + " '" + arg + "'; try --help");
    }
  }
  if (command.empty()) {
    return fail("expected encode or decode; try --help");
  }
  return command == "encode" ? encode(hex) : decode(hex);
}
