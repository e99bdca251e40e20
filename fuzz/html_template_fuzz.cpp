// libFuzzer target: LiveView's template parser (athanor::live::html_template) on arbitrary bytes.
// Invariants checked (abort on failure): parsing ends in a template or one template_error; a
// template's statics, with their braces doubled again and joined by "{}", are the source byte for
// byte; a render of it with a value per hole gives HTML holding every static in order.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "athanor/live/rendered.h"

using namespace athanor::live;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  std::optional<html_template> t;
  try {
    t.emplace(source);
  } catch (const template_error&) {
    return 0;
  }
  std::string again;
  for (std::size_t i = 0; i < t->statics()->size(); ++i) {
    if (i > 0) again += "{}";
    for (char c : (*t->statics())[i]) {
      again += c;
      if (c == '{' || c == '}') again += c;
    }
  }
  if (again != source) std::abort();
  std::vector<dynamic> values(t->holes(), dynamic("<v>"));
  const std::string html = to_html(t->render(std::move(values)));
  std::size_t at = 0;
  for (const std::string& s : *t->statics()) {
    at = html.find(s, at);
    if (at == std::string::npos) std::abort();
    at += s.size();
  }
  return 0;
}
