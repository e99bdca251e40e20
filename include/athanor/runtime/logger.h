// athanor::logger: leveled, structured logging in the spirit of Erlang's `logger`. Thread-safe:
// any process or thread may log, and change levels or handlers, at any time.
//
// An event has a level, the part that logged it ("runtime", "otp", "web", or "user" for
// application code), a domain (what kind of event: "crash_report", "supervisor_report",
// "process_error", "progress", or "" for plain messages), a text and key/value metadata whose
// values are terms: handlers receive the structure, not just a line of text.
//
// Filtering follows OTP's logger: an event is dropped before anything is formatted when it is
// less severe than its part's level, which is the primary level unless set_level(part, level)
// overrides it for that part (as logger:set_module_level/2 does for a module).
//
// Every event that passes goes to every installed handler (sink): a callback (add_handler), a
// file rotated by size (add_file_handler), or stderr (add_stderr_handler). With no handler
// installed, a default handler writes each event to stderr; installing any handler turns that
// default off (so a test or a JSON handler can keep stderr quiet), and add_stderr_handler puts
// stderr back next to the others.
//
// Handlers run in the logging thread, one event at a time (a mutex serialises them, so a handler
// needs no locking of its own). On a scheduler thread that is a short write: stderr and file
// sinks do one write(2) per event; a callback should not block either.
#pragma once

#include <cstddef>
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

// One log event, as handlers receive it. A plain value.
struct log_event {
  log_level level = log_level::info;
  std::string part = "user";                           // who logged it: "runtime", "otp", "web", "user", ...
  std::string domain;                                  // "crash_report", "supervisor_report", "process_error", "progress", or ""
  std::string text;                                    // the human-readable message
  std::vector<std::pair<std::string, term>> metadata;  // structured fields, e.g. {"pid", <0.5.0>}
  pid process;                                         // the logging process (null outside one)
  std::int64_t time_us = 0;                            // wall clock, microseconds since the epoch

  // The value of metadata `key`, or the atom `undefined`.
  term get(std::string_view key) const;
  // The event formatted as the default handler prints it (no trailing newline): the UTC time,
  // the level, the domain in brackets if any, the text, then one indented line per metadata field.
  std::string format() const;
};

namespace logger {

// A sink that receives every event that passes the levels. Runs in the logging thread, under the
// logger's mutex: it must not log itself (that would deadlock) and should return quickly.
using handler = std::function<void(const log_event&)>;

// Sets the primary level: events less severe than `level` are dropped, in every part whose level
// is not set on its own. Default: notice (as OTP).
void set_level(log_level level);
// The primary level.
log_level level();

// Sets the level of one part ("runtime", "otp", "web", "user", or any name of up to 31
// characters), overriding the primary level for events of that part, in either direction:
// set_level("web", log_level::debug) shows the web part's debug events while the rest stays at
// notice. Throws std::length_error if 32 parts already have levels, std::invalid_argument for an
// empty or longer name.
void set_level(std::string_view part, log_level level);
// Makes `part` follow the primary level again. Returns false if it had no level of its own.
bool clear_level(std::string_view part);
// The level events of `part` are filtered at: its own, or the primary level.
log_level level(std::string_view part);

// True if an event of `part` at `level` would be logged: check before building an expensive
// event. Costs an atomic load and a short scan of the parts that have levels.
bool enabled(std::string_view part, log_level level);
// enabled("user", level): for application code.
bool enabled(log_level level);

// Installs callback `h` under `id` (replacing any handler with the same id); returns the id.
std::string add_handler(std::string id, handler h);

// Where and how add_file_handler writes.
struct file_options {
  std::string path;                          // the live file; opened for appending, created if missing
  std::size_t max_bytes = 10 * 1024 * 1024;  // rotate before an event would make the file larger than this
  std::size_t max_files = 5;                 // rotated files kept: path's name with .1 (newest) to .max_files
                                             // before its extension ("app.log" -> "app.1.log")
};
// Installs a handler under `id` that appends each event, formatted as log_event::format() plus a
// newline, to a file, and rotates it by size: when an event would take the file past max_bytes,
// the file becomes "<stem>.1<ext>", the previous .1 becomes .2, and so on, the oldest beyond
// max_files is deleted, and a fresh file is started (an event larger than max_bytes alone still
// goes whole into a file of its own). Each event is written and flushed with one write(2), so a
// crash loses nothing already logged. Replaces a handler with the same id; returns the id.
// Throws std::runtime_error if the file cannot be opened (or max_bytes is 0); a write that fails
// later (a full disk) drops that event.
std::string add_file_handler(std::string id, file_options options);

// Installs a handler under `id` that writes each event to stderr (one write(2) per event), as the
// default handler does: to keep stderr next to a file or callback handler. Returns the id.
std::string add_stderr_handler(std::string id = "stderr");

// Removes the handler `id` (closing its file, for a file handler); returns false if there was none.
bool remove_handler(std::string_view id);

// Logs an event: dropped if below its part's level; else stamped with the calling process and the
// time (when not already set) and handed to every handler. An exception thrown by a handler is
// swallowed: logging never ends the caller.
void log(log_event event);
// Logs a plain event of part "user".
void log(log_level level, std::string text, std::vector<std::pair<std::string, term>> metadata = {});
// Logs a plain event of `part` (library code: "web", "otp", ...).
void log(std::string_view part, log_level level, std::string text, std::vector<std::pair<std::string, term>> metadata = {});

inline void error(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::error, std::move(text), std::move(md)); }
inline void warning(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::warning, std::move(text), std::move(md)); }
inline void notice(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::notice, std::move(text), std::move(md)); }
inline void info(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::info, std::move(text), std::move(md)); }
inline void debug(std::string text, std::vector<std::pair<std::string, term>> md = {}) { log(log_level::debug, std::move(text), std::move(md)); }

}  // namespace logger

// Logs the crash report of a process that ended abnormally (OTP's proc_lib crash report / the
// "Generic server terminating" report): level error, part "otp", domain "crash_report", metadata
// pid, name, reason, last_message and state (each a term; use the atom `undefined` when unknown).
void report_crash(pid who, term name, term reason, term last_message, term state);

}  // namespace athanor
