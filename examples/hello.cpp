// The seed example: a process that waits for a greeting and prints it.
#include <fmt/core.h>

#include <athanor/athanor.h>

struct hello {
  std::string name;
};

int main() {
  athanor::runtime rt;  // one scheduler thread per core

  auto pid = athanor::spawn([](athanor::process& self) -> athanor::proc {
    auto [name] = co_await self.receive<hello>();
    fmt::print("Hello, {}!\n", name);
  });
  athanor::send(pid, hello{"Alice"});

  rt.wait();  // until every process has ended
}
