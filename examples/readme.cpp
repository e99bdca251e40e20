// The README's first example, verbatim (a smoke test checks its output).
#include <athanor/athanor.h>
using namespace athanor;

struct get {};
struct inc { int by = 1; };

struct counter : gen_server<counter> {   // a server: its state and its handlers
  int n = 0;
  int  handle_call(get)   { return n; }  // call<counter>(server, get{}) returns an int
  void handle_cast(inc i) { n += i.by; }
};

int main() {
  runtime rt;                            // one scheduler thread per core
  spawn([](process&) -> proc {
    std::vector<child_spec> children{child<counter>("counter")};   // started and registered as "counter"
    start_result sup = co_await supervisor::start_link(
        {.strategy = one_for_one, .intensity = 3, .period = std::chrono::seconds(5)}, std::move(children));
    cast<counter>("counter", inc{2});
    int v = co_await call<counter>("counter", get{}, std::chrono::seconds(5));   // 2
    fmt::print("counter = {}\n", v);
  });                                    // this process ends: its linked supervisor stops the tree
  rt.wait();                             // until every process has ended
}
