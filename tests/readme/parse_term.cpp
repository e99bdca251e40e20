// README block parse_term, in a function.
#include <athanor/athanor.h>
using namespace athanor;

void readme_block() {
#include "parse_term.inc"
}
