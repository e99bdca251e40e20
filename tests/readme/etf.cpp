// README block etf, as a program run by ctest.
#include <athanor/athanor.h>
using namespace athanor;
using namespace athanor::literals;

int main() {
#include "etf.inc"
}
