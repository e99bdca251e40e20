// athanor::node_settings: a node's settings (name, cookie, schedulers, log level, limits) read
// from code, a config file in Erlang term syntax, ATHANOR_<KEY> environment variables and
// command-line flags, with that precedence: code < file < environment < flags.
//
//   int main(int argc, char** argv) {
//     athanor::node_settings code;
//     code.schedulers = 4;                                   // the program's own choice
//     athanor::node_settings s = athanor::load_settings(code, argc, argv);   // may throw config_error
//     athanor::runtime rt(athanor::to_runtime_config(s));
//     ...
//   }
//
// The config file is one term, like an Erlang sys.config (the final '.' optional, % comments
// allowed). Either the settings' proplist or that proplist in an `athanor` section:
//
//   [{athanor, [{node, 'cpp@host'}, {cookie, "secret"}, {schedulers, 4}, {log_level, info},
//               {max_processes, 1000000}]}].
//
// The keys (file key / environment variable / flag), every one optional:
//
//   node                 ATHANOR_NODE                  --node NAME             'name@host' or 'name'
//   long_names           ATHANOR_LONG_NAMES            --long-names BOOL       the host part is a full domain name
//   cookie               ATHANOR_COOKIE                --cookie TEXT
//   schedulers           ATHANOR_SCHEDULERS            --schedulers N          0..1024, 0: one per core
//   log_level            ATHANOR_LOG_LEVEL             --log-level LEVEL       emergency .. debug
//   max_processes        ATHANOR_MAX_PROCESSES         --max-processes N       1..268435455
//   max_heap_bytes       ATHANOR_MAX_HEAP_BYTES        --max-heap-bytes N      0: no limit
//   reductions_per_slice ATHANOR_REDUCTIONS_PER_SLICE  --reductions-per-slice N
//   hog_threshold_ms     ATHANOR_HOG_THRESHOLD_MS      --hog-threshold-ms N
//   max_relief_threads   ATHANOR_MAX_RELIEF_THREADS    --max-relief-threads N
//   dirty_cpu_threads    ATHANOR_DIRTY_CPU_THREADS     --dirty-cpu-threads N   0: one per core
//   dirty_io_threads     ATHANOR_DIRTY_IO_THREADS      --dirty-io-threads N
//   io_uring             ATHANOR_IO_URING              --io-uring BOOL
//   (the file's path)    ATHANOR_CONFIG                --config FILE
//
// In a file, names and the cookie are atoms, strings or binaries, numbers are integers, BOOL is
// true or false. In the environment and flags, numbers are plain decimal and BOOL is true,
// false, 1 or 0. A log level matches whatever its case. node_settings_help() lists the flags.
//
// Thread-safety: node_settings is a plain value (the usual rules for concurrent access). The
// functions share no state; settings_from_environment() reads the process environment through
// `lookup`, which with the default is only as thread-safe as std::getenv (do not call setenv
// meanwhile).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "athanor/runtime/runtime.h"

namespace athanor {

// Thrown for settings that cannot be used. what() is one line naming where the problem is and
// what was expected, e.g.
//   "node.config: schedulers: expected an integer from 0 to 1024, got abc"
//   "ATHANOR_SCHEDULERS: expected an integer from 0 to 1024, got 'abc'"
//   "--log-level: expected one of emergency alert critical error warning notice info debug, got 'loud'"
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The names of the log levels, most severe first: the order of athanor::log_level's
// enumerators, so that log_level(*find_log_level(name)) is the level called `name`.
inline constexpr std::array<std::string_view, 8> kLogLevelNames = {"emergency", "alert", "critical", "error",
                                                                   "warning",   "notice", "info",    "debug"};

// Returns the index of `name` in kLogLevelNames, ignoring case, or nullopt if it is none of them.
std::optional<std::size_t> find_log_level(std::string_view name) noexcept;

// A node's settings. An unset field (nullopt) means "not given here": a later source may set it,
// and to_runtime_config() leaves runtime_config's default for it. Every set field holds a
// value already checked (the ranges in the file comment; log_level is one of kLogLevelNames).
// A plain value: copy and compare freely.
struct node_settings {
  std::optional<std::string> node;        // node name, 'name' or 'name@host' (for distribution)
  std::optional<bool> long_names;         // true: the host part is a fully qualified domain name
  std::optional<std::string> cookie;      // the distribution cookie
  std::optional<unsigned> schedulers;     // runtime_config::schedulers
  std::optional<std::string> log_level;   // one of kLogLevelNames, lower case
  std::optional<std::size_t> max_processes;
  std::optional<std::size_t> max_heap_bytes;
  std::optional<std::int32_t> reductions_per_slice;
  std::optional<std::chrono::milliseconds> hog_threshold;   // key hog_threshold_ms
  std::optional<unsigned> max_relief_threads;
  std::optional<unsigned> dirty_cpu_threads;
  std::optional<unsigned> dirty_io_threads;
  std::optional<bool> io_uring;
  // Where to read a config file from. Not a key a file may hold (files do not include files);
  // resolve_settings() takes it from flags, else the environment, else code.
  std::optional<std::string> config_file;

  friend bool operator==(const node_settings&, const node_settings&) = default;
};

// Returns `base` with every field that is set in `over` replaced by over's value.
node_settings merge_settings(node_settings base, const node_settings& over);

// Returns the settings written in `text`, a config file's contents (see the file comment).
// `source` names the text in error messages (a file's path). Throws config_error if the text is
// not one term in Erlang syntax, is not a proplist of {Key, Value} tuples (bare or in an
// {athanor, Proplist} section), names an unknown key or section, gives a key twice, or gives a
// value of the wrong type or out of range; the message names `source`, the key, what was
// expected and what was found. Throws std::bad_alloc.
node_settings parse_settings(std::string_view text, std::string_view source);

// Returns the settings in the file at `path` (as parse_settings). Throws config_error if the
// file cannot be read (missing, unreadable, a directory, larger than 1 MiB) or does not parse;
// the message starts with the path. Throws std::bad_alloc.
node_settings read_settings_file(const std::string& path);

// Looks an environment variable up by name: its value, or nullopt if it is not set.
using env_lookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment, through std::getenv.
std::optional<std::string> system_environment(const std::string& name);

// Returns the settings given by ATHANOR_<KEY> variables (the key upper-cased: ATHANOR_SCHEDULERS),
// and config_file from ATHANOR_CONFIG, each looked up with `lookup`. A variable that is unset or
// empty sets nothing. Throws config_error naming the variable for a value that does not parse or
// is out of range (ATHANOR_SCHEDULERS=abc). Variables with other names are not looked at.
node_settings settings_from_environment(const env_lookup& lookup = system_environment);

// Returns the settings given by the flags in argv[1..argc) (--schedulers N or --schedulers=N,
// --config FILE, ...) and removes them from argv, decrementing argc: the tool's own flags and
// arguments stay, in order, with argv[argc] left null. Stops looking at a "--" argument (left in
// place, with everything after it). A later flag for the same key wins. Throws config_error
// naming the flag if its value is missing, does not parse or is out of range; argv is then left
// as it was.
node_settings settings_from_flags(int& argc, char** argv);

// The part of a tool's --help about the flags settings_from_flags() takes: a heading of two
// lines (where settings come from), then one line per flag with its description, each starting
// with "  --". Every line ends with '\n'.
std::string node_settings_help();

// Returns merge of code < file < environment < flags, where file is read from the config_file of
// `flags`, else of `environment`, else of `code` (none set: no file). The result's config_file is
// the path read. Throws config_error as read_settings_file().
node_settings resolve_settings(const node_settings& code, const node_settings& environment,
                               const node_settings& flags);

// The one call for a tool's main(): resolve_settings(code, settings_from_environment(lookup),
// settings_from_flags(argc, argv)). argv loses the flags it knew, as with settings_from_flags.
// Throws config_error from any of them.
node_settings load_settings(const node_settings& code, int& argc, char** argv,
                            const env_lookup& lookup = system_environment);

// Returns `base` with the fields of runtime_config that are set in `settings` replaced by their
// values (node, long_names, cookie and log_level are not runtime_config's: the caller gives them
// to the logger and distribution). Never throws: set fields are already valid.
runtime_config to_runtime_config(const node_settings& settings, runtime_config base = {});

}  // namespace athanor
