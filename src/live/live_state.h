// A live_router's shared state: what its routes, its socket's channels and test_view read.
// Internal to the live part. Built before mount(), read only afterwards (by any thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "athanor/live/view.h"
#include "athanor/web/channel.h"

namespace athanor::live::detail {

struct live_state {
  live_config cfg;
  std::string secret;
  std::int64_t id = 0;  // in the registry of routers: the socket's assigns name the router by it
  std::unordered_map<std::string, std::function<std::unique_ptr<view_base>()>> views;
  web::endpoint endpoint;                 // the socket at cfg.socket_path, its channel "lv:*"
  web::socket_handler* socket = nullptr;  // endpoint's
};

}  // namespace athanor::live::detail
