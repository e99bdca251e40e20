// README block supervisors, in a process body, with the gen_server section's cache.
#include <athanor/athanor.h>
using namespace athanor;
using namespace athanor::literals;
using namespace std::chrono_literals;

struct cache : gen_server<cache> {
  explicit cache(std::size_t limit) : limit(limit) {}
  std::size_t limit;
};

proc poll_loop(process& self) { co_await self.sleep(1s); }

proc readme_block(process&, std::vector<child_spec> worker_children, child_spec spec) {
#include "supervisors.inc"
}
