// Test helpers: capture the logger's events, or silence it, for the life of an object.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "athanor/runtime/logger.h"

namespace athanor::testing {

// Records every log event while alive (and keeps them off stderr). Sets the primary level while
// alive; per-part levels are left alone.
class log_capture {
 public:
  explicit log_capture(log_level level = log_level::debug) : previous_(logger::level()) {
    logger::set_level(level);
    logger::add_handler("test_capture", [this](const log_event& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    });
  }
  ~log_capture() {
    logger::remove_handler("test_capture");
    logger::set_level(previous_);
  }
  std::vector<log_event> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<log_event> with_domain(const std::string& domain) const {
    std::lock_guard lock(mu_);
    std::vector<log_event> out;
    for (auto& e : events_)
      if (e.domain == domain) out.push_back(e);
    return out;
  }
  std::vector<log_event> at_level(log_level level) const {
    std::lock_guard lock(mu_);
    std::vector<log_event> out;
    for (auto& e : events_)
      if (e.level == level) out.push_back(e);
    return out;
  }

 private:
  log_level previous_;
  mutable std::mutex mu_;
  std::vector<log_event> events_;
};

// Drops every log event while alive (for tests that crash processes on purpose).
class logs_silenced {
 public:
  logs_silenced() { logger::add_handler("test_silence", [](const log_event&) {}); }
  ~logs_silenced() { logger::remove_handler("test_silence"); }
};

}  // namespace athanor::testing
