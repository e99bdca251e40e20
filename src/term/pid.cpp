#include "athanor/term/pid.h"
#include "athanor/term/port.h"

#include <fmt/format.h>

namespace athanor {

std::string pid::to_string() const { return fmt::format("<{}.{}.{}>", node(), index(), generation()); }

std::string port_id::to_string() const { return fmt::format("#Port<{}.{}>", node_, number_); }

}  // namespace athanor
