#include "athanor/term/pid.h"

#include <fmt/format.h>

namespace athanor {

std::string pid::to_string() const { return fmt::format("<{}.{}.{}>", node(), index(), generation()); }

}  // namespace athanor
