// README block links_and_monitors, in a process body.
#include <athanor/athanor.h>
using namespace athanor;

struct quit {};

proc readme_block(process& self, pid other) {
#include "links_and_monitors.inc"
}
