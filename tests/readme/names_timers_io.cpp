// README block names_timers_io, in a process body.
#include <athanor/athanor.h>

#include <filesystem>
#include <numeric>
using namespace athanor;
using namespace athanor::literals;
using namespace std::chrono_literals;

struct tick {};

proc readme_block(process& self, pid other, term msg, std::filesystem::path path, std::vector<long> v,
                  std::span<std::byte> buffer, std::string reply) {
#include "names_timers_io.inc"
}
