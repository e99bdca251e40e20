// athanor::logger: leveled, structured logging in the spirit of Erlang's `logger`, and the crash
// reports OTP behaviours emit. Thread-safe: any process or thread may log at any time.
//
// A log event has a level, a domain (what kind of event: "crash_report", "supervisor_report",
// "progress", or "" for plain messages), a text and key/value metadata whose values are terms.
// Events below the primary level are dropped before anything is formatted. Every event goes to
// the installed handlers; with none installed, the default handler writes one line per event
// (continuation lines indented) to stderr.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "athanor/term/pid.h"
#include "athanor/term/term.h"

namespace athanor {

// Erlang's logger levels, most severe first.
enum class log_level : std::uint8_t { emergency, alert, critical, error, warning, notice, info, debug };

// The level's name ("error", "info", ...).
std::string_view to_string(log_level level);

// One log event, as handlers receive it.
struct log_event {
  log_level level = log_level::info;
  std::string domain;                                  // "crash_report", "supervisor_report", "progress", or ""
  std::string text;                                    // the human-readable message
  std::vector<std::pair<std::string, term>> metadata;  // structured fields, e.g. {"pid", <0.5.0>}
  pid process;                                         // the logging process (null outside one)
  std::int64_t time_us = 0;                            // wall clock, microseconds since the epoch

  // The value of metadata `key`, or the atom `undefined`.
  term get(std::string_view key) const;
  // The event formatted as the default handler prints it (no trailing newline).
  std::string format() const;
};

namespace logger {

using handler = std::function<void(const log_event&)>;

// Sets the primary level: events less severe than `level` are dropped. Default: notice (as OTP).
void set_level(log_level level);
log_level level();
// True if an event at `level` would be logged (check before building an expensive message).
bool enabled(log_level level);

// Installs a handler under `id` (replacing one with the same id); returns the id. While any
// handler is installed, the default stderr handler is off.
std::string add_handler(std::string id, handler h);
// Removes the handler `id`; returns false if there was none.
bool remove_handler(std::string_view id);

// Logs an event (dropped if below the primary level). Handlers run in the caller, one at a time;
// an exception thrown by a handler is swallowed (logging never ends the caller).
void log(log_event event);
void log(log_level level, std::string text, std::vector<std::pair<std::string, term>> metadata = {});

inline void error(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::error, std::move(text), std::move(md)); }
inline void warning(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::warning, std::move(text), std::move(md)); }
inline void notice(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::notice, std::move(text), std::move(md)); }
inline void info(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::info, std::move(text), std::move(md)); }
inline void debug(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::debug, std::move(text), std::move(md)); }

}  // namespace logger

// Logs the crash report of a process that ended abnormally (OTP's proc_lib crash report / the
// "Generic server terminating" report): level error, domain "crash_report", metadata pid, name,
// reason, last_message and state (each a term; use the atom `undefined` when unknown).
void report_crash(pid who, term name, term reason, term last_message, term state);

}  // namespace athanor
