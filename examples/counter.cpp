// The README's first example: a gen_server under a supervisor, called by name, crashed on
// purpose and restarted. Run: build/release/counter
#include <athanor/athanor.h>

using namespace athanor;
using namespace std::chrono_literals;

struct get {};
struct inc { int by = 1; };
struct crash {};

struct counter : gen_server<counter> {  // the state and its handlers, chosen by request type
  int n = 0;
  int handle_call(get) { return n; }    // call<counter>(server, get{}) returns an int
  void handle_cast(inc i) { n += i.by; }
  void handle_cast(crash) { throw std::runtime_error("bad input"); }  // let it crash
};

int main() {
  runtime rt;
  logger::set_level(log_level::critical);  // keep this example's output short: no crash report
  spawn([](process& self) -> proc {
    std::vector<child_spec> children{child<counter>("counter")};  // started and registered as "counter"
    start_result sup = co_await supervisor::start_link({.strategy = one_for_one, .intensity = 3, .period = 5s},
                                                       std::move(children));
    cast<counter>("counter", inc{2});
    int before = co_await call<counter>("counter", get{}, 5s);

    pid old = whereis(atom("counter"));
    cast<counter>("counter", crash{});                 // the server dies...
    while (whereis(atom("counter")) == old) co_await self.sleep(1ms);
    int after = co_await call<counter>("counter", get{});  // ...and its supervisor restarted it
    fmt::print("counter was {}, crashed, restarted as {} with n = {}\n", before, whereis(atom("counter")).to_string(), after);
    (void)sup;
  });  // when this process ends, its linked supervisor shuts the tree down
  rt.wait();
}
