// server::slow_clients_cut(): the count the WebSocket outboxes and slow-reader cuts keep (see
// websocket.cpp). Kept apart from server.cpp, which holds the connection machinery.
#include "athanor/web/server.h"
#include "web/server_state.h"

namespace athanor::web {

std::size_t server::slow_clients_cut() const noexcept {
  return s_ ? s_->slow_clients_cut->load(std::memory_order_acquire) : 0;
}

}  // namespace athanor::web
