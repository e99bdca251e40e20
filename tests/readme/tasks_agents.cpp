// README block tasks_agents, in a process body.
#include <athanor/athanor.h>
using namespace athanor;
using namespace athanor::literals;
using namespace std::chrono_literals;

int expensive() { return 42; }
std::string fetch() { return "body"; }
void send_report() {}
struct connection : gen_server<connection> {};

proc readme_block(process&, std::vector<int> inputs) {
#include "tasks_agents.inc"
}
