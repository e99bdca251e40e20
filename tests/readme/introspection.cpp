// README block introspection, in a process body.
#include <athanor/athanor.h>
using namespace athanor;

proc readme_block(process& self, pid other, proc (*body)(process&)) {
#include "introspection.inc"
}
