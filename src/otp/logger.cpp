// The logger: a primary level (an atomic, so dropped events cost one load) and a handler list
// under a mutex. Handlers run in the logging thread: OTP's logger also formats and filters in
// the caller; the default handler's single fwrite per event keeps lines from interleaving.
#include "athanor/otp/logger.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <fmt/format.h>

#include "athanor/runtime/process.h"

namespace athanor {

namespace {

std::atomic<log_level> g_level{log_level::notice};

struct handler_table {
  std::mutex mu;
  std::vector<std::pair<std::string, logger::handler>> handlers;
};
handler_table& table() {
  static auto* t = new handler_table;  // never destroyed: processes may log during exit
  return *t;
}

void default_handler(const log_event& e) {
  std::string line = e.format();
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

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
bool enabled(log_level l) { return l <= g_level.load(std::memory_order_relaxed); }

std::string add_handler(std::string id, handler h) {
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

bool remove_handler(std::string_view id) {
  auto& t = table();
  std::lock_guard lock(t.mu);
  for (auto it = t.handlers.begin(); it != t.handlers.end(); ++it) {
    if (it->first == id) {
      t.handlers.erase(it);
      return true;
    }
  }
  return false;
}

void log(log_event e) {
  if (!enabled(e.level)) return;
  if (!e.process) e.process = self();
  if (e.time_us == 0)
    e.time_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto& t = table();
  std::lock_guard lock(t.mu);
  try {
    if (t.handlers.empty()) {
      default_handler(e);
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

void log(log_level level, std::string text, std::vector<std::pair<std::string, term>> metadata) {
  if (!enabled(level)) return;
  log_event e;
  e.level = level;
  e.text = std::move(text);
  e.metadata = std::move(metadata);
  log(std::move(e));
}

}  // namespace logger

void report_crash(pid who, term name, term reason, term last_message, term state) {
  if (!logger::enabled(log_level::error)) return;
  log_event e;
  e.level = log_level::error;
  e.domain = "crash_report";
  e.text = fmt::format("process {} ({}) terminated abnormally", who.to_string(), name.to_string());
  e.metadata = {{"pid", term(who)}, {"name", std::move(name)}, {"reason", std::move(reason)},
                {"last_message", std::move(last_message)}, {"state", std::move(state)}};
  e.process = who;
  logger::log(std::move(e));
}

}  // namespace athanor
