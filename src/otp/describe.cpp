#include "athanor/otp/describe.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace athanor {

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  std::string out = status == 0 && name ? name.get() : type.name();
  // Anonymous namespaces add noise without information in a report.
  for (std::string_view noise : {"(anonymous namespace)::", "athanor::"}) {
    for (auto pos = out.find(noise); pos != std::string::npos; pos = out.find(noise)) out.erase(pos, noise.size());
  }
  return out;
}

}  // namespace athanor
