// README block processes_and_messages, inside a function that has a process to be (`self`).
#include <athanor/athanor.h>
using namespace athanor;

void readme_block(process& self, std::vector<int> big_vector) {
#include "processes_and_messages.inc"
}
