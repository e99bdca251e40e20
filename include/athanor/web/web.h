// Athanor's web layer: HTTP/1.1 and WebSocket servers where every connection is a process.
// Everything is in namespace athanor::web; see server.h for listen(), router.h for routes and conn,
// websocket.h for ws, http.h for the parser.
#pragma once

#include "athanor/web/http.h"
#include "athanor/web/router.h"
#include "athanor/web/server.h"
#include "athanor/web/websocket.h"
#include "athanor/web/channel.h"
#include "athanor/web/channel_message.h"
#include "athanor/web/channel_test.h"
#include "athanor/web/presence.h"
#include "athanor/web/pubsub.h"
