// A user's program built with Athanor taken in from source (tests/package/subproject/CMakeLists.txt):
// the generated athanor/version.h is reachable from the build tree. scripts/package-test.sh checks:
//   subproject: athanor 0.1.0, {ok,[1,2,3]}
#include <athanor/term/parse.h>
#include <athanor/term/term.h>
#include <athanor/version.h>

#include <fmt/core.h>

int main() {
  athanor::term t = athanor::parse_term("{ok, [1, 2, 3]}");
  fmt::print("subproject: athanor {}, {}\n", athanor::version(), t.to_string());
}
