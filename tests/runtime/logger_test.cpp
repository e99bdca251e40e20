// The logger: levels (primary and per part), sinks (stderr, a rotating file, callbacks) and
// structured events. Every check reads what a sink wrote after the logging call has returned:
// handlers run in the logging thread, so nothing here waits or sleeps.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "log_capture.h"
#include "test_util.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;
namespace fs = std::filesystem;

// Restores the primary level and clears the given parts' levels when a test ends.
class levels_restored {
 public:
  explicit levels_restored(std::vector<std::string> parts) : primary_(logger::level()), parts_(std::move(parts)) {}
  ~levels_restored() {
    logger::set_level(primary_);
    for (auto& p : parts_) logger::clear_level(p);
  }

 private:
  log_level primary_;
  std::vector<std::string> parts_;
};

// A fresh directory, removed with its files when the test ends.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "athanor_logger_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sends what is written to stderr (fd 2) to a file while alive; text() is what was written.
class stderr_captured {
 public:
  stderr_captured() : file_(std::tmpfile()), saved_(::dup(2)) {
    std::fflush(stderr);
    ::dup2(::fileno(file_), 2);
  }
  ~stderr_captured() {
    restore();
    std::fclose(file_);
  }
  std::string text() {
    restore();
    std::string out;
    std::rewind(file_);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file_)) > 0;) out.append(buf, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::FILE* file_;
  int saved_;
};

// An event whose formatted size does not depend on the clock.
log_event fixed_event(std::string text) {
  log_event e;
  e.level = log_level::error;
  e.text = std::move(text);
  e.time_us = 1'700'000'000'000'000;
  return e;
}

TEST(Logger, ThePrimaryLevelDropsLessSevereEventsInEveryPartWithoutALevel) {
  levels_restored restore({});
  log_capture capture(log_level::warning);
  logger::info("dropped");
  logger::log("web", log_level::notice, "dropped too");
  logger::warning("kept");
  logger::log("web", log_level::error, "kept too");
  auto events = capture.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].text, "kept");
  EXPECT_EQ(events[1].text, "kept too");
  EXPECT_EQ(logger::level(), log_level::warning);
  EXPECT_FALSE(logger::enabled(log_level::notice));
  EXPECT_TRUE(logger::enabled(log_level::warning));
}

TEST(Logger, APartsLevelOverridesThePrimaryLevelInBothDirections) {
  levels_restored restore({"web", "runtime"});
  log_capture capture(log_level::notice);
  logger::set_level("web", log_level::debug);      // more verbose than the primary level
  logger::set_level("runtime", log_level::error);  // quieter
  EXPECT_EQ(logger::level("web"), log_level::debug);
  EXPECT_EQ(logger::level("runtime"), log_level::error);
  EXPECT_EQ(logger::level("otp"), log_level::notice);  // follows the primary level
  EXPECT_TRUE(logger::enabled("web", log_level::debug));
  EXPECT_FALSE(logger::enabled("otp", log_level::debug));
  EXPECT_FALSE(logger::enabled("runtime", log_level::warning));

  logger::log("web", log_level::debug, "web debug");
  logger::log("otp", log_level::info, "otp info");
  logger::log("runtime", log_level::warning, "runtime warning");
  logger::log("runtime", log_level::error, "runtime error");
  logger::notice("user notice");
  auto events = capture.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].text, "web debug");
  EXPECT_EQ(events[0].part, "web");
  EXPECT_EQ(events[1].text, "runtime error");
  EXPECT_EQ(events[2].text, "user notice");
  EXPECT_EQ(events[2].part, "user");

  // Setting a part's level again replaces it.
  logger::set_level("web", log_level::warning);
  EXPECT_EQ(logger::level("web"), log_level::warning);
}

TEST(Logger, ClearLevelMakesAPartFollowThePrimaryLevelAgain) {
  levels_restored restore({"web"});
  log_capture capture(log_level::notice);
  logger::set_level("web", log_level::debug);
  EXPECT_TRUE(logger::clear_level("web"));
  EXPECT_FALSE(logger::clear_level("web"));          // no level of its own any more
  EXPECT_FALSE(logger::clear_level("never_set"));
  EXPECT_EQ(logger::level("web"), log_level::notice);
  logger::log("web", log_level::debug, "dropped");
  logger::set_level(log_level::debug);               // the primary level now decides for web
  logger::log("web", log_level::debug, "kept");
  auto events = capture.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].text, "kept");
}

TEST(Logger, APartNameMustHaveOneTo31Characters) {
  EXPECT_THROW(logger::set_level("", log_level::debug), std::invalid_argument);
  EXPECT_THROW(logger::set_level(std::string(32, 'x'), log_level::debug), std::invalid_argument);
}

TEST(Logger, CallbackHandlersReceiveTheStructuredEventAndAreReplacedById) {
  log_capture capture(log_level::debug);
  std::vector<std::string> first, second;
  logger::add_handler("cb", [&](const log_event& e) { first.push_back(e.text); });
  logger::info("one", {{"answer", term(42)}, {"who", term("me"_a)}});
  EXPECT_EQ(logger::add_handler("cb", [&](const log_event& e) { second.push_back(e.text); }), "cb");
  logger::info("two");
  EXPECT_TRUE(logger::remove_handler("cb"));
  EXPECT_FALSE(logger::remove_handler("cb"));
  logger::info("three");
  EXPECT_EQ(first, std::vector<std::string>{"one"});
  EXPECT_EQ(second, std::vector<std::string>{"two"});

  auto events = capture.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].get("answer"), term(42));
  EXPECT_EQ(events[0].get("who"), term("me"_a));
  EXPECT_EQ(events[0].get("missing"), term(atoms::undefined));
  EXPECT_EQ(events[0].level, log_level::info);
  EXPECT_GT(events[0].time_us, 0);
  EXPECT_FALSE(events[0].process);  // logged outside a process
}

TEST(Logger, AThrowingHandlerNeitherEndsTheCallerNorStopsTheOtherHandlers) {
  log_capture capture(log_level::debug);
  logger::add_handler("throws", [](const log_event&) { throw std::runtime_error("handler bug"); });
  EXPECT_NO_THROW(logger::error("still delivered"));
  logger::remove_handler("throws");
  EXPECT_EQ(capture.events().size(), 1u);
}

TEST_F(RuntimeTest, AnEventLoggedInAProcessCarriesItsPid) {
  log_capture capture(log_level::debug);
  outcome<pid> logged_by;
  run([&](process& self) -> proc {
    logger::notice("from a process");
    logged_by.set(self.self());
    co_return;
  });
  auto events = capture.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].process, logged_by.get());
}

TEST(Logger, WithNoHandlerInstalledEventsGoToStderr) {
  levels_restored restore({});
  logger::set_level(log_level::notice);
  stderr_captured err;
  logger::warning("to stderr", {{"k", term(1)}});
  std::string text = err.text();
  EXPECT_NE(text.find("warning: to stderr\n    k: 1\n"), std::string::npos) << text;
}

TEST(Logger, AStderrHandlerWritesNextToOtherHandlers) {
  levels_restored restore({});
  log_capture capture(log_level::notice);  // a handler: the default stderr output is off
  {
    stderr_captured err;
    logger::notice("quiet");
    EXPECT_EQ(err.text(), "");
  }
  EXPECT_EQ(logger::add_stderr_handler(), "stderr");
  stderr_captured err;
  log_event e = fixed_event("loud");
  e.domain = "crash_report";
  logger::log(e);
  EXPECT_TRUE(logger::remove_handler("stderr"));
  EXPECT_EQ(err.text(), e.format() + "\n");
  EXPECT_EQ(capture.events().size(), 2u);  // the callback still got both
}

TEST(Logger, FormatShowsTimeLevelDomainTextAndOneLinePerMetadataField) {
  log_event e = fixed_event("disk almost full");
  e.domain = "alarm";
  e.metadata = {{"free_mb", term(120)}, {"disk", term("sda"_a)}};
  EXPECT_EQ(e.format(), "2023-11-14T22:13:20.000000Z error: [alarm] disk almost full\n    free_mb: 120\n    disk: sda");
}

TEST(Logger, AFileHandlerAppendsOneLinePerEvent) {
  temp_dir dir;
  log_capture quiet;
  fs::path path = dir / "app.log";
  EXPECT_EQ(logger::add_file_handler("file", {.path = path.string()}), "file");
  log_event a = fixed_event("first");
  log_event b = fixed_event("second");
  b.metadata = {{"n", term(2)}};
  logger::log(a);
  logger::log(b);
  // Written and flushed by the time log() returns: readable before the handler is removed.
  EXPECT_EQ(read_file(path), a.format() + "\n" + b.format() + "\n");
  EXPECT_TRUE(logger::remove_handler("file"));
  logger::log(fixed_event("after removal"));
  EXPECT_EQ(read_file(path), a.format() + "\n" + b.format() + "\n");

  // A new handler on the same path appends.
  logger::add_file_handler("file", {.path = path.string()});
  logger::log(a);
  logger::remove_handler("file");
  EXPECT_EQ(read_file(path), a.format() + "\n" + b.format() + "\n" + a.format() + "\n");
}

TEST(Logger, AFileHandlerRotatesBeforeAnEventWouldPassMaxBytesAndKeepsMaxFiles) {
  temp_dir dir;
  log_capture quiet;
  auto line = [](int i) { return fixed_event("event " + std::to_string(i)).format() + "\n"; };
  std::size_t size = line(0).size();  // every event 0..9 has the same size
  logger::add_file_handler("rotating", {.path = (dir / "app.log").string(), .max_bytes = 3 * size, .max_files = 2});
  for (int i = 0; i < 3; ++i) logger::log(fixed_event("event " + std::to_string(i)));
  // Exactly max_bytes: no rotation yet.
  EXPECT_EQ(read_file(dir / "app.log"), line(0) + line(1) + line(2));
  EXPECT_FALSE(fs::exists(dir / "app.1.log"));

  logger::log(fixed_event("event 3"));  // would pass max_bytes: rotates first
  EXPECT_EQ(read_file(dir / "app.1.log"), line(0) + line(1) + line(2));
  EXPECT_EQ(read_file(dir / "app.log"), line(3));

  for (int i = 4; i < 10; ++i) logger::log(fixed_event("event " + std::to_string(i)));
  logger::remove_handler("rotating");
  // 0-2 rotated out of the two files kept, 3-5 in .2, 6-8 in .1, 9 live.
  EXPECT_EQ(read_file(dir / "app.2.log"), line(3) + line(4) + line(5));
  EXPECT_EQ(read_file(dir / "app.1.log"), line(6) + line(7) + line(8));
  EXPECT_EQ(read_file(dir / "app.log"), line(9));
  EXPECT_FALSE(fs::exists(dir / "app.3.log"));
}

TEST(Logger, AFileHandlerThatCannotOpenItsFileThrowsAndIsNotInstalled) {
  temp_dir dir;
  fs::create_directory(dir / "a_directory");
  EXPECT_THROW(logger::add_file_handler("bad", {.path = (dir / "a_directory").string()}), std::runtime_error);
  EXPECT_THROW(logger::add_file_handler("bad", {.path = (dir / "app.log").string(), .max_bytes = 0}), std::runtime_error);
  EXPECT_FALSE(logger::remove_handler("bad"));
}

TEST(Logger, ReportCrashIsAStructuredErrorOfTheOtpPart) {
  log_capture capture;
  pid who(0, 7, 1);
  report_crash(who, term("worker"_a), term("boom"_a), term(atoms::undefined), term(3));
  auto events = capture.with_domain("crash_report");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].level, log_level::error);
  EXPECT_EQ(events[0].part, "otp");
  EXPECT_EQ(events[0].process, who);
  EXPECT_EQ(events[0].get("reason"), term("boom"_a));
  EXPECT_EQ(events[0].get("state"), term(3));
}

}  // namespace
}  // namespace athanor::testing
