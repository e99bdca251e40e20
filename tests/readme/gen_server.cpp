// README block gen_server: the server class, at namespace scope, beside the first example's
// counter that its handle_call(total) calls.
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
