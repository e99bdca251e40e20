// The npm clients the live tests drive (tests/live/js: phoenix_live_view, phoenix, ws, jsdom,
// playwright-core, pinned by its lockfile): where they are, and installed once if missing.
#pragma once

#include <filesystem>
#include <string>

#include "../support/npm_packages.h"

namespace athanor::live::testing {

inline std::string js_dir() { return (std::filesystem::path(__FILE__).parent_path() / "js").string(); }

inline bool ensure_node_modules() {
  return ::athanor::testing_support::ensure_npm_packages(js_dir(), {"phoenix_live_view", "playwright-core", "jsdom", "phoenix", "ws"});
}

}  // namespace athanor::live::testing
