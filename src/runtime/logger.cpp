// The logger: a primary level and per-part levels read without a lock (a dropped event costs a
// few loads), and a handler list under a mutex. Handlers run in the logging thread: OTP's logger
// also formats and filters in the caller, and the sinks here write one buffer per event, so lines
// from different threads never interleave.
//
// Why the file sink is spdlog's rotating_file_sink: it is the rotation users know (the same file
// names, the same "rotate before the write that would overflow" rule), Debian ships it, and it is
// used header-only and privately here, so no spdlog header or library reaches users.
#include "athanor/runtime/logger.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>

#include "athanor/runtime/process.h"

namespace athanor {

namespace {

std::atomic<log_level> g_level{log_level::notice};

// Parts with a level of their own. Entries are appended under `mu` and never removed (clearing a
// level stores kFollowPrimary), so a reader that has loaded `count` may scan that many entries
// without a lock: an entry's name is written before `count` publishes it, and never changes.
struct part_levels {
  static constexpr int kFollowPrimary = -1;
  static constexpr std::size_t kMaxParts = 32;
  static constexpr std::size_t kMaxName = 31;
  struct entry {
    char name[kMaxName + 1] = {};
    std::size_t size = 0;
    std::atomic<int> level{kFollowPrimary};
    std::string_view view() const { return std::string_view(name, size); }
  };
  std::mutex mu;
  std::array<entry, kMaxParts> entries;
  std::atomic<std::size_t> count{0};

  entry* find(std::string_view part) {
    std::size_t n = count.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i)
      if (entries[i].view() == part) return &entries[i];
    return nullptr;
  }
};
part_levels& parts() {
  static auto* p = new part_levels;  // never destroyed: processes may log during exit
  return *p;
}

struct handler_table {
  std::mutex mu;
  std::vector<std::pair<std::string, logger::handler>> handlers;
};
handler_table& table() {
  static auto* t = new handler_table;  // never destroyed: processes may log during exit
  return *t;
}

void write_stderr(const log_event& e) {
  std::string line = e.format();
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);  // stderr is unbuffered: one write(2)
}

// A rotating file. Only called under the handler table's mutex, hence spdlog's single-threaded sink.
class file_sink {
 public:
  explicit file_sink(const logger::file_options& o) {
    if (o.max_bytes == 0) throw std::runtime_error("athanor::logger::add_file_handler: max_bytes must be positive");
    try {
      sink_ = std::make_unique<spdlog::sinks::rotating_file_sink_st>(o.path, o.max_bytes, o.max_files);
      sink_->set_formatter(std::make_unique<spdlog::pattern_formatter>("%v"));
    } catch (const spdlog::spdlog_ex& x) {
      throw std::runtime_error(fmt::format("athanor::logger::add_file_handler: {}", x.what()));
    }
  }
  void write(const log_event& e) {
    std::string text = e.format();
    sink_->log(spdlog::details::log_msg(spdlog::source_loc{}, "athanor", spdlog::level::info, text));
    sink_->flush();
  }

 private:
  std::unique_ptr<spdlog::sinks::rotating_file_sink_st> sink_;
};

}  // namespace

std::string_view to_string(log_level level) {
  static constexpr std::string_view names[] = {"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"};
  return names[static_cast<int>(level)];
}

term log_event::get(std::string_view key) const {
  for (auto& [k, v] : metadata)
    if (k == key) return v;
  return term(atoms::undefined);
}

std::string log_event::format() const {
  std::time_t secs = std::time_t(time_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::string out = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z {}: ", tm.tm_year + 1900, tm.tm_mon + 1,
                                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, time_us % 1'000'000, to_string(level));
  if (!domain.empty()) out += fmt::format("[{}] ", domain);
  out += text;
  for (auto& [k, v] : metadata) out += fmt::format("\n    {}: {}", k, v.to_string());
  return out;
}

namespace logger {

void set_level(log_level level) { g_level.store(level, std::memory_order_relaxed); }
log_level level() { return g_level.load(std::memory_order_relaxed); }

void set_level(std::string_view part, log_level level) {
  if (part.empty() || part.size() > part_levels::kMaxName)
    throw std::invalid_argument("athanor::logger::set_level: a part's name has 1 to 31 characters");
  auto& p = parts();
  std::lock_guard lock(p.mu);
  std::size_t n = p.count.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    if (p.entries[i].view() == part) {
      p.entries[i].level.store(int(level), std::memory_order_relaxed);
      return;
    }
  }
  if (n == part_levels::kMaxParts) throw std::length_error("athanor::logger::set_level: 32 parts already have levels");
  auto& e = p.entries[n];
  part.copy(e.name, part.size());
  e.size = part.size();
  e.level.store(int(level), std::memory_order_relaxed);
  p.count.store(n + 1, std::memory_order_release);
}

bool clear_level(std::string_view part) {
  auto* e = parts().find(part);
  if (!e) return false;
  return e->level.exchange(part_levels::kFollowPrimary, std::memory_order_relaxed) !=
         part_levels::kFollowPrimary;
}

log_level level(std::string_view part) {
  if (auto* e = parts().find(part)) {
    int own = e->level.load(std::memory_order_relaxed);
    if (own != part_levels::kFollowPrimary) return log_level(own);
  }
  return g_level.load(std::memory_order_relaxed);
}

bool enabled(std::string_view part, log_level l) { return l <= level(part); }
bool enabled(log_level l) { return enabled("user", l); }

namespace {
std::string install(std::string id, handler h) {
  auto& t = table();
  std::lock_guard lock(t.mu);
  for (auto& [k, v] : t.handlers) {
    if (k == id) {
      v = std::move(h);
      return id;
    }
  }
  t.handlers.emplace_back(id, std::move(h));
  return id;
}
}  // namespace

std::string add_handler(std::string id, handler h) { return install(std::move(id), std::move(h)); }

std::string add_file_handler(std::string id, file_options options) {
  // Opened here, in the caller, so that a bad path is the caller's exception, not a lost event.
  auto sink = std::make_shared<file_sink>(options);
  return install(std::move(id), [sink](const log_event& e) { sink->write(e); });
}

std::string add_stderr_handler(std::string id) { return install(std::move(id), write_stderr); }

bool remove_handler(std::string_view id) {
  handler removed;  // destroyed (a file closed) after the lock is released
  auto& t = table();
  std::lock_guard lock(t.mu);
  for (auto it = t.handlers.begin(); it != t.handlers.end(); ++it) {
    if (it->first == id) {
      removed = std::move(it->second);
      t.handlers.erase(it);
      return true;
    }
  }
  return false;
}

void log(log_event e) {
  if (!enabled(e.part, e.level)) return;
  if (!e.process) e.process = self();
  if (e.time_us == 0)
    e.time_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto& t = table();
  std::lock_guard lock(t.mu);
  try {
    if (t.handlers.empty()) {
      write_stderr(e);
      return;
    }
    for (auto& [id, h] : t.handlers) {
      try {
        h(e);
      } catch (...) {
      }
    }
  } catch (...) {
  }
}

void log(std::string_view part, log_level level, std::string text, std::vector<std::pair<std::string, term>> metadata) {
  if (!enabled(part, level)) return;
  log_event e;
  e.level = level;
  e.part = std::string(part);
  e.text = std::move(text);
  e.metadata = std::move(metadata);
  log(std::move(e));
}

void log(log_level level, std::string text, std::vector<std::pair<std::string, term>> metadata) {
  log("user", level, std::move(text), std::move(metadata));
}

}  // namespace logger

void report_crash(pid who, term name, term reason, term last_message, term state) {
  if (!logger::enabled("otp", log_level::error)) return;
  log_event e;
  e.level = log_level::error;
  e.part = "otp";
  e.domain = "crash_report";
  e.text = fmt::format("process {} ({}) terminated abnormally", who.to_string(), name.to_string());
  e.metadata = {{"pid", term(who)}, {"name", std::move(name)}, {"reason", std::move(reason)},
                {"last_message", std::move(last_message)}, {"state", std::move(state)}};
  e.process = who;
  logger::log(std::move(e));
}

}  // namespace athanor
