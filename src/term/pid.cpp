#include "athanor/term/pid.h"
#include "athanor/term/port.h"

#include <fmt/format.h>

#include <ostream>

namespace athanor {

std::string pid::to_string() const { return fmt::format("<{}.{}.{}>", node(), index(), generation()); }

std::ostream& operator<<(std::ostream& out, pid p) { return out << p.to_string(); }

std::string port_id::to_string() const { return fmt::format("#Port<{}.{}>", node_, number_); }

}  // namespace athanor
