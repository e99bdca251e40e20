// README block logging, in a function.
#include <athanor/athanor.h>
using namespace athanor;

void readme_block() {
#include "logging.inc"
}
