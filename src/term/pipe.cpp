#include "athanor/term/pipe.h"

namespace athanor::pipes {

namespace {
// ASCII only, on purpose: the bytes of multi-byte UTF-8 sequences are all >= 0x80 and pass
// through unchanged, so the result stays valid UTF-8 (std::toupper would depend on the locale).
char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c; }
char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }
bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
}  // namespace

std::string upcase_t::operator()(std::string_view text) const {
  std::string out(text);
  for (char& c : out) c = ascii_upper(c);
  return out;
}

std::string downcase_t::operator()(std::string_view text) const {
  std::string out(text);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

std::string trim_t::operator()(std::string_view text) const {
  while (!text.empty() && ascii_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && ascii_space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

std::vector<std::string> split_t::operator()(std::string_view text) const {
  std::vector<std::string> parts;
  if (sep.empty()) {
    for (char c : text) parts.emplace_back(1, c);
    return parts;
  }
  std::size_t start = 0;
  for (;;) {
    std::size_t at = text.find(sep, start);
    if (at == std::string_view::npos) {
      parts.emplace_back(text.substr(start));
      return parts;
    }
    parts.emplace_back(text.substr(start, at - start));
    start = at + sep.size();
  }
}

}  // namespace athanor::pipes
