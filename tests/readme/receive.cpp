// README block receive, in a process body.
#include <athanor/athanor.h>
using namespace athanor;
using namespace std::chrono_literals;

struct hello { std::string name; };
struct quit {};

proc readme_block(process& self) {
#include "receive.inc"
}
