// A user's program built against an installed Athanor (tests/package/consumer/CMakeLists.txt, or
// `pkg-config --cflags --libs athanor`). scripts/package-test.sh runs it and checks what it prints:
//   athanor 0.1.0: 2 + 40 = 42 from <0.N.0>, big {ok,123456789012345678901234567890}, ws s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
#include <athanor/athanor.h>
#include <athanor/term/parse.h>
#include <athanor/version.h>
#include <athanor/web/websocket.h>

#include <fmt/core.h>

#include <chrono>
#include <string>

using namespace athanor;
using namespace std::chrono_literals;

struct deposit { int n; };
struct total {};

struct adder : gen_server<adder> {
  int sum = 0;
  void handle_cast(deposit d) { sum += d.n; }
  int handle_call(total) { return sum; }
};

struct result { pid from; int value; };

int main() {
  runtime rt({.schedulers = 2});
  pid main_process = spawn([](process& self) -> proc {
    pid server = (co_await start_link<adder>()).value();
    cast<adder>(server, deposit{2});
    // A plain process of its own adds the rest and says who it was.
    pid worker = spawn([server, parent = self.self()](process& me) -> proc {
      cast<adder>(server, deposit{40});
      send(parent, result{me.self(), 0});
      co_return;
    });
    result r = co_await self.receive<result>();
    int sum = co_await call<adder>(server, total{}, 5s);
    term big = parse_term("{ok, 123456789012345678901234567890}");
    fmt::print("athanor {}: 2 + 40 = {} from {}, big {}, ws {}\n", athanor::version(), sum,
               r.from == worker ? r.from.to_string() : std::string("?"), big.to_string(),
               web::ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=="));
    co_await stop(server);  // a normal exit does not end a linked process that does not trap exits
  });
  (void)main_process;
  rt.wait();
}
