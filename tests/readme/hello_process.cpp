// README block hello_process: a whole program around it, run by ctest.
#include <athanor/athanor.h>
using namespace athanor;

int main() {
  runtime rt;
#include "hello_process.inc"
  rt.wait();
}
