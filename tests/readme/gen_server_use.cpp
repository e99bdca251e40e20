// README blocks gen_server and gen_server_use: the server (with its wrapper, gen_server.cpp)
// started, called and stopped from a process, run by ctest.
#include "gen_server.cpp"

int main() {
  runtime rt;
  spawn([](process&) -> proc {
#include "gen_server_use.inc"
  });
  rt.wait();
}
