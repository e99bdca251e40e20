// README blocks gen_server and gen_server_use: the server started, called and stopped from a
// process, run by ctest.
#include <athanor/athanor.h>

#include <unordered_map>
using namespace athanor;
using namespace athanor::literals;
using namespace std::chrono_literals;

struct get {};
struct counter : gen_server<counter> {
  int n = 0;
  int handle_call(get) { return n; }
};

#include "gen_server.inc"

int main() {
  runtime rt;
  spawn([](process&) -> proc {
#include "gen_server_use.inc"
  });
  rt.wait();
}
