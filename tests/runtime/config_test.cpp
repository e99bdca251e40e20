// node_settings: each key from a file, the environment and flags; the precedence between every
// pair of sources; the errors; and the runtime_config that results.
#include "athanor/runtime/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace athanor {
namespace {

using namespace std::chrono_literals;

// Every key set, to values different from runtime_config's defaults.
node_settings all_keys_set() {
  node_settings s;
  s.node = "cpp@host.example.com";
  s.long_names = true;
  s.cookie = "secret";
  s.schedulers = 3;
  s.log_level = "info";
  s.max_processes = 1000;
  s.max_heap_bytes = 65536;
  s.reductions_per_slice = 2000;
  s.hog_threshold = 25ms;
  s.max_relief_threads = 5;
  s.dirty_cpu_threads = 2;
  s.dirty_io_threads = 7;
  s.io_uring = false;
  return s;
}

constexpr const char* kAllKeysFile = R"(
  % every key, as a sys.config section
  [{athanor, [{node, 'cpp@host.example.com'},
              {long_names, true},
              {cookie, "secret"},
              {schedulers, 3},
              {log_level, info},
              {max_processes, 1000},
              {max_heap_bytes, 65536},
              {reductions_per_slice, 2000},
              {hog_threshold_ms, 25},
              {max_relief_threads, 5},
              {dirty_cpu_threads, 2},
              {dirty_io_threads, 7},
              {io_uring, false}]}].
)";

const std::map<std::string, std::string> kAllKeysEnv = {
    {"ATHANOR_NODE", "cpp@host.example.com"},
    {"ATHANOR_LONG_NAMES", "true"},
    {"ATHANOR_COOKIE", "secret"},
    {"ATHANOR_SCHEDULERS", "3"},
    {"ATHANOR_LOG_LEVEL", "info"},
    {"ATHANOR_MAX_PROCESSES", "1000"},
    {"ATHANOR_MAX_HEAP_BYTES", "65536"},
    {"ATHANOR_REDUCTIONS_PER_SLICE", "2000"},
    {"ATHANOR_HOG_THRESHOLD_MS", "25"},
    {"ATHANOR_MAX_RELIEF_THREADS", "5"},
    {"ATHANOR_DIRTY_CPU_THREADS", "2"},
    {"ATHANOR_DIRTY_IO_THREADS", "7"},
    {"ATHANOR_IO_URING", "0"},
};

// An environment made of `vars`, not the process's.
env_lookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A mutable argv for settings_from_flags, null-terminated as main's.
struct args {
  explicit args(std::vector<std::string> words) : storage(std::move(words)) {
    for (std::string& w : storage) pointers.push_back(w.data());
    pointers.push_back(nullptr);
    argc = int(storage.size());
  }
  char** argv() { return pointers.data(); }
  // What is left in argv[0..argc).
  std::vector<std::string> left() const {
    std::vector<std::string> out;
    for (int i = 0; i < argc; ++i) out.emplace_back(pointers[std::size_t(i)]);
    return out;
  }
  std::vector<std::string> storage;
  std::vector<char*> pointers;
  int argc = 0;
};

// A file holding `text` in the test's temporary directory, removed at the end of the test.
class temp_file {
 public:
  explicit temp_file(const std::string& text) {
    path_ = testing::TempDir() + "athanor_config_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++);
    std::ofstream(path_) << text;
  }
  ~temp_file() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

// The message of the config_error that `f` throws ("" if it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

// ---- log levels

TEST(ConfigTest, FindLogLevelGivesEachNamesIndexIgnoringCase) {
  for (std::size_t i = 0; i < kLogLevelNames.size(); ++i) EXPECT_EQ(find_log_level(kLogLevelNames[i]), i);
  EXPECT_EQ(find_log_level("emergency"), 0u);
  EXPECT_EQ(find_log_level("debug"), 7u);
  EXPECT_EQ(find_log_level("Warning"), 4u);
  EXPECT_EQ(find_log_level("NOTICE"), 5u);
  EXPECT_EQ(find_log_level("loud"), std::nullopt);
  EXPECT_EQ(find_log_level(""), std::nullopt);
  EXPECT_EQ(find_log_level("debugx"), std::nullopt);
}

// ---- merging

TEST(ConfigTest, MergeTakesTheFieldsSetInOverAndKeepsTheOthers) {
  node_settings base;
  base.node = "a@h";
  base.schedulers = 2;
  base.io_uring = true;
  node_settings over;
  over.schedulers = 5;
  over.cookie = "c";
  over.config_file = "f";
  node_settings m = merge_settings(base, over);
  EXPECT_EQ(m.node, "a@h");
  EXPECT_EQ(m.schedulers, 5u);
  EXPECT_EQ(m.cookie, "c");
  EXPECT_EQ(m.io_uring, true);
  EXPECT_EQ(m.config_file, "f");
  EXPECT_EQ(merge_settings(node_settings{}, all_keys_set()), all_keys_set());
  EXPECT_EQ(merge_settings(all_keys_set(), node_settings{}), all_keys_set());
}

// ---- the config file

TEST(ConfigTest, ParseReadsEveryKeyFromASection) {
  EXPECT_EQ(parse_settings(kAllKeysFile, "all.config"), all_keys_set());
}

TEST(ConfigTest, ParseReadsABareProplistWithOrWithoutTheFinalDot) {
  node_settings expected;
  expected.schedulers = 4;
  expected.log_level = "debug";
  EXPECT_EQ(parse_settings("[{schedulers, 4}, {log_level, debug}].", "f"), expected);
  EXPECT_EQ(parse_settings("[{schedulers, 4}, {log_level, debug}]", "f"), expected);
  EXPECT_EQ(parse_settings("[{athanor, [{schedulers, 4}, {log_level, debug}]}]", "f"), expected);
  EXPECT_EQ(parse_settings("[]", "f"), node_settings{});
  EXPECT_EQ(parse_settings("[{athanor, []}].", "f"), node_settings{});
}

TEST(ConfigTest, ParseTakesNamesAndCookiesAsAtomsStringsOrBinaries) {
  EXPECT_EQ(parse_settings("[{node, app}]", "f").node, "app");
  EXPECT_EQ(parse_settings("[{node, \"app@h\"}]", "f").node, "app@h");
  EXPECT_EQ(parse_settings("[{node, <<\"app@h\">>}]", "f").node, "app@h");
  EXPECT_EQ(parse_settings("[{cookie, 'Secret Cookie'}]", "f").cookie, "Secret Cookie");
  EXPECT_EQ(parse_settings("[{cookie, <<\"bin\">>}]", "f").cookie, "bin");
  // A string is a list of code points: written back as UTF-8.
  EXPECT_EQ(parse_settings("[{cookie, \"caf\\x{e9}\"}]", "f").cookie, "caf\xc3\xa9");
  EXPECT_EQ(parse_settings("[{log_level, \"warning\"}]", "f").log_level, "warning");
  EXPECT_EQ(parse_settings("[{log_level, 'ERROR'}]", "f").log_level, "error");
}

TEST(ConfigTest, ParseTakesTheEndsOfEachRange) {
  EXPECT_EQ(parse_settings("[{schedulers, 0}]", "f").schedulers, 0u);
  EXPECT_EQ(parse_settings("[{schedulers, 1024}]", "f").schedulers, 1024u);
  EXPECT_EQ(parse_settings("[{max_processes, 1}]", "f").max_processes, 1u);
  EXPECT_EQ(parse_settings("[{max_processes, 268435455}]", "f").max_processes, 268435455u);
  EXPECT_EQ(parse_settings("[{reductions_per_slice, 2147483647}]", "f").reductions_per_slice, 2147483647);
  EXPECT_EQ(parse_settings("[{max_heap_bytes, 0}]", "f").max_heap_bytes, 0u);
  EXPECT_EQ(parse_settings("[{io_uring, true}]", "f").io_uring, true);
}

TEST(ConfigTest, ParseNamesTheSourceAndKeyOfAnUnknownKey) {
  const std::string e = error_of([] { parse_settings("[{schedulers, 2}, {shedulers, 4}]", "node.config"); });
  EXPECT_NE(e.find("node.config"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'shedulers'"), std::string::npos) << e;
  EXPECT_NE(e.find("known: node, long_names, cookie, schedulers"), std::string::npos) << e;
  // Files do not include files.
  EXPECT_NE(error_of([] { parse_settings("[{config_file, \"other\"}]", "f"); }).find("unknown key 'config_file'"),
            std::string::npos);
}

TEST(ConfigTest, ParseNamesTheKeyTheExpectedTypeAndTheValueOfABadValue) {
  EXPECT_EQ(error_of([] { parse_settings("[{schedulers, four}]", "n.config"); }),
            "n.config: schedulers: expected an integer from 0 to 1024, got four");
  EXPECT_EQ(error_of([] { parse_settings("[{athanor, [{schedulers, 1025}]}]", "n.config"); }),
            "n.config: athanor: schedulers: expected an integer from 0 to 1024, got 1025");
  EXPECT_EQ(error_of([] { parse_settings("[{max_processes, 0}]", "f"); }),
            "f: max_processes: expected an integer from 1 to 268435455, got 0");
  EXPECT_EQ(error_of([] { parse_settings("[{max_heap_bytes, -1}]", "f"); }),
            "f: max_heap_bytes: expected an integer from 0 to 18446744073709551615, got -1");
  EXPECT_EQ(error_of([] { parse_settings("[{max_heap_bytes, 99999999999999999999999}]", "f"); }),
            "f: max_heap_bytes: expected an integer from 0 to 18446744073709551615, got 99999999999999999999999");
  EXPECT_EQ(error_of([] { parse_settings("[{schedulers, 2.0}]", "f"); }),
            "f: schedulers: expected an integer from 0 to 1024, got 2.0");
  EXPECT_EQ(error_of([] { parse_settings("[{io_uring, 1}]", "f"); }), "f: io_uring: expected true or false, got 1");
  EXPECT_EQ(error_of([] { parse_settings("[{log_level, loud}]", "f"); }),
            "f: log_level: expected one of emergency alert critical error warning notice info debug, got loud");
  EXPECT_EQ(error_of([] { parse_settings("[{cookie, 42}]", "f"); }),
            "f: cookie: expected a non-empty atom or string, got 42");
  EXPECT_EQ(error_of([] { parse_settings("[{cookie, \"\"}]", "f"); }),
            "f: cookie: expected a non-empty atom or string, got []");
  EXPECT_EQ(error_of([] { parse_settings("[{node, 'two@at@signs'}]", "f"); }),
            "f: node: expected a node name such as 'app@host' (an atom or string), got two@at@signs");
  EXPECT_EQ(error_of([] { parse_settings("[{node, \"a b\"}]", "f"); }),
            "f: node: expected a node name such as 'app@host' (an atom or string), got \"a b\"");
  EXPECT_NE(error_of([] { parse_settings("[{node, 'app@'}]", "f"); }), "");
  EXPECT_NE(error_of([] { parse_settings("[{node, '@host'}]", "f"); }), "");
  EXPECT_NE(error_of([] { parse_settings("[{node, 'has space'}]", "f"); }), "");
  EXPECT_NE(error_of([] { parse_settings("[{node, [1 | 2]}]", "f"); }), "");
}

TEST(ConfigTest, ParseRejectsShapesOtherThanAProplist) {
  EXPECT_EQ(error_of([] { parse_settings("#{schedulers => 2}", "f"); }),
            "f: expected a list of {Key, Value} tuples, got #{schedulers => 2}");
  EXPECT_EQ(error_of([] { parse_settings("[{schedulers, 2} | x]", "f"); }),
            "f: expected a list of {Key, Value} tuples, got [{schedulers,2}|x]");
  EXPECT_EQ(error_of([] { parse_settings("[schedulers]", "f"); }),
            "f: expected a {Key, Value} tuple with an atom key, got schedulers");
  EXPECT_EQ(error_of([] { parse_settings("[{\"schedulers\", 2}]", "f"); }),
            "f: expected a {Key, Value} tuple with an atom key, got {\"schedulers\",2}");
  EXPECT_EQ(error_of([] { parse_settings("[{schedulers, 2, 3}]", "f"); }),
            "f: expected a {Key, Value} tuple with an atom key, got {schedulers,2,3}");
  EXPECT_EQ(error_of([] { parse_settings("[{schedulers, 2}, {schedulers, 3}]", "f"); }), "f: schedulers: given twice");
  EXPECT_EQ(error_of([] { parse_settings("[{athanor, [{schedulers, 2}]}, {kernel, []}]", "f"); }),
            "f: unknown section 'kernel' (only athanor's is read)");
  EXPECT_EQ(error_of([] { parse_settings("[{athanor, []}, {athanor, []}]", "f"); }),
            "f: the athanor section is given twice");
  EXPECT_EQ(error_of([] { parse_settings("[{athanor, schedulers}]", "f"); }),
            "f: athanor: expected a list of {Key, Value} tuples, got schedulers");
}

TEST(ConfigTest, ParseReportsTextThatIsNotATermOnOneLine) {
  const std::string e = error_of([] { parse_settings("[{schedulers, 2}\n{log_level, info}]", "bad.config"); });
  EXPECT_EQ(e.rfind("bad.config: not a term in Erlang syntax: ", 0), 0u) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_NE(error_of([] { parse_settings("", "f"); }), "");
  EXPECT_NE(error_of([] { parse_settings("[{schedulers, X}]", "f"); }), "");
  EXPECT_NE(error_of([] { parse_settings("[{a, 1}]. [{b, 2}].", "f"); }), "");
  EXPECT_NE(error_of([] { parse_settings(std::string(100000, '['), "f"); }), "");
}

TEST(ConfigTest, ReadSettingsFileReadsTheFile) {
  temp_file f(kAllKeysFile);
  EXPECT_EQ(read_settings_file(f.path()), all_keys_set());
}

TEST(ConfigTest, ReadSettingsFileNamesTheFileInEveryError) {
  const std::string missing = testing::TempDir() + "athanor_config_test_no_such_file";
  EXPECT_EQ(error_of([&] { read_settings_file(missing); }), missing + ": cannot read: No such file or directory");
  EXPECT_EQ(error_of([] { read_settings_file(testing::TempDir()); }).find(": cannot read: "),
            testing::TempDir().size());
  temp_file bad("[{schedulers, lots}].");
  EXPECT_EQ(error_of([&] { read_settings_file(bad.path()); }),
            bad.path() + ": schedulers: expected an integer from 0 to 1024, got lots");
  temp_file big(std::string(2 << 20, ' '));
  EXPECT_EQ(error_of([&] { read_settings_file(big.path()); }),
            big.path() + ": larger than 1048576 bytes: not a config file");
}

// ---- the environment

TEST(ConfigTest, EnvironmentGivesEveryKey) {
  EXPECT_EQ(settings_from_environment(fake_env(kAllKeysEnv)), all_keys_set());
  node_settings path_only;
  path_only.config_file = "/etc/node.config";
  EXPECT_EQ(settings_from_environment(fake_env({{"ATHANOR_CONFIG", "/etc/node.config"}})), path_only);
}

TEST(ConfigTest, EnvironmentLooksUpOnlyAthanorVariables) {
  std::set<std::string> asked;
  settings_from_environment([&](const std::string& name) -> std::optional<std::string> {
    asked.insert(name);
    return std::nullopt;
  });
  std::set<std::string> expected{"ATHANOR_CONFIG"};
  for (auto& [name, value] : kAllKeysEnv) expected.insert(name);
  EXPECT_EQ(asked, expected);
}

TEST(ConfigTest, EnvironmentTakesEmptyAsUnsetAndBooleansAndLevelsInAnyCase) {
  EXPECT_EQ(settings_from_environment(fake_env({{"ATHANOR_SCHEDULERS", ""}, {"ATHANOR_CONFIG", ""}})), node_settings{});
  EXPECT_EQ(settings_from_environment(fake_env({{"ATHANOR_IO_URING", "TRUE"}})).io_uring, true);
  EXPECT_EQ(settings_from_environment(fake_env({{"ATHANOR_IO_URING", "1"}})).io_uring, true);
  EXPECT_EQ(settings_from_environment(fake_env({{"ATHANOR_LONG_NAMES", "False"}})).long_names, false);
  EXPECT_EQ(settings_from_environment(fake_env({{"ATHANOR_LOG_LEVEL", "DEBUG"}})).log_level, "debug");
}

TEST(ConfigTest, EnvironmentNamesTheVariableOfABadValue) {
  EXPECT_EQ(error_of([] { settings_from_environment(fake_env({{"ATHANOR_SCHEDULERS", "abc"}})); }),
            "ATHANOR_SCHEDULERS: expected an integer from 0 to 1024, got 'abc'");
  for (const char* bad : {"-1", "1025", " 4", "4 ", "+4", "4x", "99999999999999999999999"}) {
    EXPECT_NE(error_of([&] { settings_from_environment(fake_env({{"ATHANOR_SCHEDULERS", bad}})); }), "") << bad;
  }
  EXPECT_EQ(error_of([] { settings_from_environment(fake_env({{"ATHANOR_LOG_LEVEL", "loud"}})); }),
            "ATHANOR_LOG_LEVEL: expected one of emergency alert critical error warning notice info debug, got 'loud'");
  EXPECT_EQ(error_of([] { settings_from_environment(fake_env({{"ATHANOR_IO_URING", "maybe"}})); }),
            "ATHANOR_IO_URING: expected true, false, 1 or 0, got 'maybe'");
  EXPECT_EQ(error_of([] { settings_from_environment(fake_env({{"ATHANOR_NODE", "a b"}})); }),
            "ATHANOR_NODE: expected a node name such as app or app@host, got 'a b'");
  // Control characters are shown escaped: the message stays on one line.
  EXPECT_EQ(error_of([] { settings_from_environment(fake_env({{"ATHANOR_MAX_PROCESSES", "1\n2"}})); }),
            "ATHANOR_MAX_PROCESSES: expected an integer from 1 to 268435455, got '1\\x0a2'");
}

TEST(ConfigTest, SystemEnvironmentReadsTheProcessEnvironment) {
  // A name no one else uses: this test's process is the only reader.
  const std::string name = "ATHANOR_CONFIG_TEST_" + std::to_string(::getpid());
  EXPECT_EQ(system_environment(name), std::nullopt);
  ASSERT_EQ(::setenv(name.c_str(), "value", 1), 0);
  EXPECT_EQ(system_environment(name), "value");
  ::unsetenv(name.c_str());
}

// ---- flags

TEST(ConfigTest, FlagsGiveEveryKeyAndLeaveTheRest) {
  args a({"tool", "--node", "cpp@host.example.com", "--long-names", "true", "--cookie", "secret", "serve",
          "--schedulers", "3", "--log-level=info", "--port", "4000", "--max-processes", "1000", "--max-heap-bytes",
          "65536", "--reductions-per-slice", "2000", "--hog-threshold-ms", "25", "--max-relief-threads=5",
          "--dirty-cpu-threads", "2", "--dirty-io-threads", "7", "--io-uring", "false", "-v"});
  EXPECT_EQ(settings_from_flags(a.argc, a.argv()), all_keys_set());
  EXPECT_EQ(a.left(), (std::vector<std::string>{"tool", "serve", "--port", "4000", "-v"}));
  EXPECT_EQ(a.argv()[a.argc], nullptr);
}

TEST(ConfigTest, FlagsTakeTheConfigPathAndTheLastOfARepeatedFlag) {
  args a({"tool", "--config", "a.config", "--schedulers", "1", "--schedulers=2", "--config=b.config"});
  node_settings s = settings_from_flags(a.argc, a.argv());
  EXPECT_EQ(s.config_file, "b.config");
  EXPECT_EQ(s.schedulers, 2u);
  EXPECT_EQ(a.left(), std::vector<std::string>{"tool"});
}

TEST(ConfigTest, FlagsStopAtADoubleDash) {
  args a({"tool", "--schedulers", "2", "--", "--schedulers", "3"});
  EXPECT_EQ(settings_from_flags(a.argc, a.argv()).schedulers, 2u);
  EXPECT_EQ(a.left(), (std::vector<std::string>{"tool", "--", "--schedulers", "3"}));
}

TEST(ConfigTest, FlagErrorsNameTheFlagAndLeaveArgvAlone) {
  auto check = [](std::vector<std::string> words, const std::string& message) {
    args a(words);
    EXPECT_EQ(error_of([&] { settings_from_flags(a.argc, a.argv()); }), message);
    EXPECT_EQ(a.left(), words);
  };
  check({"tool", "--port", "1", "--schedulers", "abc"}, "--schedulers: expected an integer from 0 to 1024, got 'abc'");
  check({"tool", "--schedulers"}, "--schedulers: expected a value after it");
  check({"tool", "--config"}, "--config: expected a value after it");
  check({"tool", "--config="}, "--config: expected a file path, got ''");
  check({"tool", "--log-level=loud"},
        "--log-level: expected one of emergency alert critical error warning notice info debug, got 'loud'");
  check({"tool", "--dirty-io-threads", "0"}, "--dirty-io-threads: expected an integer from 1 to 1024, got '0'");
  check({"tool", "--cookie="}, "--cookie: expected a non-empty value, got ''");
}

TEST(ConfigTest, HelpListsEveryFlagOnALineOfItsOwn) {
  const std::string help = node_settings_help();
  std::vector<std::string> lines;
  for (std::size_t start = 0; start < help.size();) {
    const std::size_t end = help.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "the last line lacks its newline";
    lines.push_back(help.substr(start, end - start));
    start = end + 1;
  }
  ASSERT_EQ(lines.size(), 2 + 1 + kAllKeysEnv.size());  // heading, --config, one per key
  EXPECT_NE(lines[0].find("ATHANOR_SOME_KEY"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[2].rfind("  --config FILE ", 0), 0u) << lines[2];
  std::set<std::string> flags;
  for (std::size_t i = 2; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind("  --", 0), 0u) << lines[i];
    EXPECT_LE(lines[i].size(), 100u) << lines[i];
    EXPECT_GT(lines[i].size(), 34u) << "no description: " << lines[i];
    flags.insert(lines[i].substr(2, lines[i].find(' ', 2) - 2));
  }
  std::set<std::string> expected{"--config"};
  for (auto& [variable, value] : kAllKeysEnv) {
    std::string flag = "--";
    for (char c : variable.substr(8)) flag += c == '_' ? '-' : char(std::tolower(c));
    expected.insert(flag);
  }
  EXPECT_EQ(flags, expected);
}

// ---- precedence: code < file < environment < flags

TEST(ConfigTest, EachSourceOverridesTheOnesBelowIt) {
  temp_file file("[{schedulers, 2}, {cookie, file}, {node, file}, {log_level, error}]");
  node_settings code;
  code.schedulers = 1;
  code.cookie = "code";
  code.node = "code";
  code.log_level = "alert";
  code.max_processes = 100;
  code.config_file = file.path();
  node_settings environment;
  environment.cookie = "env";
  environment.node = "env";
  environment.max_processes = 300;
  environment.io_uring = false;
  node_settings flags;
  flags.node = "flag";
  flags.max_processes = 400;
  flags.io_uring = true;

  const node_settings s = resolve_settings(code, environment, flags);
  EXPECT_EQ(s.schedulers, 2u);          // file over code
  EXPECT_EQ(s.log_level, "error");      // file over code
  EXPECT_EQ(s.cookie, "env");           // environment over file and code
  EXPECT_EQ(s.node, "flag");            // flags over environment, file and code
  EXPECT_EQ(s.max_processes, 400u);     // flags over environment and code
  EXPECT_EQ(s.io_uring, true);          // flags over environment
  EXPECT_EQ(s.config_file, file.path());
  EXPECT_EQ(s.dirty_io_threads, std::nullopt);

  // Without the file: environment over code, flags over code.
  code.config_file.reset();
  const node_settings t = resolve_settings(code, environment, flags);
  EXPECT_EQ(t.schedulers, 1u);
  EXPECT_EQ(t.cookie, "env");
  EXPECT_EQ(t.log_level, "alert");
  EXPECT_EQ(t.config_file, std::nullopt);
  node_settings only_flags;
  only_flags.schedulers = 9;
  EXPECT_EQ(resolve_settings(code, {}, only_flags).schedulers, 9u);
}

TEST(ConfigTest, TheConfigPathComesFromFlagsElseEnvironmentElseCode) {
  temp_file from_code("[{schedulers, 1}]");
  temp_file from_env("[{schedulers, 2}]");
  temp_file from_flags("[{schedulers, 3}]");
  node_settings code, environment, flags;
  code.config_file = from_code.path();
  EXPECT_EQ(resolve_settings(code, environment, flags).schedulers, 1u);
  environment.config_file = from_env.path();
  EXPECT_EQ(resolve_settings(code, environment, flags).schedulers, 2u);
  EXPECT_EQ(resolve_settings(code, environment, flags).config_file, from_env.path());
  flags.config_file = from_flags.path();
  EXPECT_EQ(resolve_settings(code, environment, flags).schedulers, 3u);
  EXPECT_EQ(resolve_settings(code, environment, flags).config_file, from_flags.path());
  // Only one file is read: the one chosen.
  code.config_file = "/nonexistent/code.config";
  environment.config_file = "/nonexistent/env.config";
  EXPECT_EQ(resolve_settings(code, environment, flags).schedulers, 3u);
}

TEST(ConfigTest, ResolveReportsAMissingConfigFile) {
  node_settings flags;
  flags.config_file = "/nonexistent/athanor.config";
  EXPECT_EQ(error_of([&] { resolve_settings({}, {}, flags); }),
            "/nonexistent/athanor.config: cannot read: No such file or directory");
}

TEST(ConfigTest, LoadSettingsCombinesAllFourSources) {
  temp_file file("[{schedulers, 2}, {log_level, info}, {cookie, file}, {max_processes, 500}]");
  node_settings code;
  code.schedulers = 1;
  code.dirty_io_threads = 4;
  args a({"tool", "--max-processes", "700", "run"});
  const node_settings s = load_settings(
      code, a.argc, a.argv(),
      fake_env({{"ATHANOR_CONFIG", file.path()}, {"ATHANOR_COOKIE", "env"}, {"ATHANOR_MAX_PROCESSES", "600"}}));
  EXPECT_EQ(s.dirty_io_threads, 4u);     // code only
  EXPECT_EQ(s.schedulers, 2u);           // file over code
  EXPECT_EQ(s.log_level, "info");        // file only
  EXPECT_EQ(s.cookie, "env");            // environment over file
  EXPECT_EQ(s.max_processes, 700u);      // flag over environment and file
  EXPECT_EQ(s.config_file, file.path());
  EXPECT_EQ(a.left(), (std::vector<std::string>{"tool", "run"}));

  args bad({"tool"});
  EXPECT_EQ(error_of([&] { load_settings({}, bad.argc, bad.argv(), fake_env({{"ATHANOR_SCHEDULERS", "x"}})); }),
            "ATHANOR_SCHEDULERS: expected an integer from 0 to 1024, got 'x'");
}

// ---- runtime_config

TEST(ConfigTest, ToRuntimeConfigWritesEverySetField) {
  const runtime_config c = to_runtime_config(all_keys_set());
  EXPECT_EQ(c.schedulers, 3u);
  EXPECT_EQ(c.max_processes, 1000u);
  EXPECT_EQ(c.max_heap_bytes, 65536u);
  EXPECT_EQ(c.reductions_per_slice, 2000);
  EXPECT_EQ(c.hog_threshold, 25ms);
  EXPECT_EQ(c.max_relief_threads, 5u);
  EXPECT_EQ(c.dirty_cpu_threads, 2u);
  EXPECT_EQ(c.dirty_io_threads, 7u);
  EXPECT_EQ(c.io_uring, false);
}

TEST(ConfigTest, ToRuntimeConfigKeepsTheBaseForUnsetFields) {
  const runtime_config defaults;
  const runtime_config c = to_runtime_config(node_settings{});
  EXPECT_EQ(c.schedulers, defaults.schedulers);
  EXPECT_EQ(c.max_processes, defaults.max_processes);
  EXPECT_EQ(c.max_heap_bytes, defaults.max_heap_bytes);
  EXPECT_EQ(c.reductions_per_slice, defaults.reductions_per_slice);
  EXPECT_EQ(c.hog_threshold, defaults.hog_threshold);
  EXPECT_EQ(c.max_relief_threads, defaults.max_relief_threads);
  EXPECT_EQ(c.dirty_cpu_threads, defaults.dirty_cpu_threads);
  EXPECT_EQ(c.dirty_io_threads, defaults.dirty_io_threads);
  EXPECT_EQ(c.io_uring, defaults.io_uring);

  runtime_config base;
  base.schedulers = 6;
  base.max_processes = 42;
  node_settings s;
  s.schedulers = 2;
  const runtime_config d = to_runtime_config(s, base);
  EXPECT_EQ(d.schedulers, 2u);
  EXPECT_EQ(d.max_processes, 42u);
}

}  // namespace
}  // namespace athanor
