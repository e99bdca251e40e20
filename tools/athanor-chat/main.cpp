// athanor-chat: chat rooms with Presence, served to browsers running the official `phoenix` client,
// on one node or across a cluster of them.
//   athanor-chat --port N [--host ADDR] [--sname NAME --cookie C [--join NODE]]
// Without --sname it runs without distribution (no EPMD, no cookie file).
//
// The contract other checks drive (keep it stable): page at `/`, socket at `/socket`, topic
// `room:<name>`, join params {"user": "<name>"} (a join without `user` is refused with
// {"reason": "user required"}); the client pushes `new_msg` {"body": "..."} (no reply) and every
// member of the room, the sender included, on any node of the cluster, receives `new_msg`
// {"user": "<name>", "body": "..."}; Presence is keyed by user name with metas carrying
// `online_at`; a topic no channel matches is refused with `unmatched topic`. When ready it prints
// its URL ("http://HOST:PORT/") and, with --sname, its node name, each on a line of its own.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "athanor/web/pubsub.h"
#include "athanor/web/web.h"
#include "web_node.h"

extern const char athanor_chat_phoenix_js[];

namespace {

using namespace athanor;

struct after_join {};

// room:* — one process per member per room.
struct chat_room : web::channel<chat_room> {
  web::join_reply join(std::string_view, const term& params, web::socket& s) {
    const term* user = params.is_map() ? params.find(term("user")) : nullptr;
    if (!user || !user->is_binary() || user->as_binary().empty()) {
      return web::join_reply::error(map({{term("reason"), term("user required")}}));
    }
    s.assign(term("user"), *user);
    send(s.channel_pid(), after_join{});  // after the join reply: the state, then the track
    return web::join_reply::ok();
  }
  void handle_info(message& m, web::socket& s) {
    if (!m.is<after_join>()) return;
    s.push("presence_state", web::presence::list(s.topic()));
    const std::string user(s.assigns().find(term("user"))->as_binary());
    (void)web::presence::track(s, user, map({{term("online_at"), term(std::to_string(std::time(nullptr)))}}));
  }
  web::in_reply handle_in(std::string_view event, const term& payload, web::socket& s) {
    if (event == "new_msg") {
      const term* body = payload.is_map() ? payload.find(term("body")) : nullptr;
      if (!body || !body->is_binary()) return web::in_reply::reply("error", map({{term("reason"), term("body required")}}));
      s.broadcast("new_msg", map({{term("user"), *s.assigns().find(term("user"))}, {term("body"), *body}}));
      return web::in_reply::noreply();
    }
    return web::in_reply::reply("error", map({{term("reason"), term("unknown event")}}));
  }
};

constexpr const char* kPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Athanor chat</title>
<style>
  body { font: 15px system-ui, sans-serif; margin: 2em; max-width: 46em; }
  #messages { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; }
  #people { color: #555; }
  .msg b { margin-right: .4em; }
</style>
</head>
<body>
<h1>Athanor chat</h1>
<form id="join">
  <input id="user" placeholder="your name" required>
  <input id="room" placeholder="room" value="lobby" required>
  <button>Join</button>
</form>
<p id="status"></p>
<p id="people"></p>
<div id="messages"></div>
<form id="say" hidden>
  <input id="body" placeholder="message" autocomplete="off" required>
  <button>Send</button>
</form>
<script src="/assets/phoenix.js"></script>
<script>
  const $ = (id) => document.getElementById(id);
  const socket = new Phoenix.Socket("/socket", {});
  socket.connect();
  let channel = null;
  $("join").addEventListener("submit", (e) => {
    e.preventDefault();
    if (channel) channel.leave();
    $("messages").textContent = "";
    const user = $("user").value, room = $("room").value;
    channel = socket.channel("room:" + room, {user});
    const presence = new Phoenix.Presence(channel);
    presence.onSync(() => {
      const names = presence.list((name) => name);
      $("people").textContent = "Here: " + names.join(", ");
      $("people").dataset.people = names.join(",");
    });
    channel.on("new_msg", ({user, body}) => {
      const line = document.createElement("div");
      line.className = "msg";
      const who = document.createElement("b");
      who.textContent = user;
      line.append(who, body);
      $("messages").append(line);
      $("messages").scrollTop = $("messages").scrollHeight;
    });
    channel.join()
      .receive("ok", () => { $("status").textContent = "In room " + room + " as " + user; $("say").hidden = false; })
      .receive("error", ({reason}) => { $("status").textContent = "Refused: " + reason; });
  });
  $("say").addEventListener("submit", (e) => {
    e.preventDefault();
    channel.push("new_msg", {body: $("body").value});
    $("body").value = "";
  });
</script>
</body>
</html>
)html";

void print_usage() {
  std::printf(
      "Usage: athanor-chat --port N [--host ADDR] [--sname NAME --cookie C [--join NODE]]\n"
      "\n"
      "Chat rooms with Presence for browsers running the official phoenix client: the page at /,\n"
      "the socket at /socket, rooms as topics room:<name>. With --sname the node joins a cluster\n"
      "(Erlang distribution): messages and presences span every athanor-chat node it is connected\n"
      "to. Stops on SIGINT/SIGTERM.\n"
      "\n"
      "Options:\n"
      "  --port N        TCP port to serve on (default 4000; 0: any free port)\n"
      "  --host ADDR     address to listen on (default 127.0.0.1)\n"
      "  --sname NAME    run as node NAME@<host name> (or NAME@HOST)\n"
      "  --cookie C      the distribution cookie (default: ~/.erlang.cookie, as erl)\n"
      "  --join NODE     connect to NODE (another athanor-chat) at start\n"
      "  --help          this text\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (tools::asks_for_help(argc, argv)) {
    print_usage();
    return 0;
  }
  return tools::run_web_node("athanor-chat", argc, argv, [](web::router& r) {
    web::endpoint ep;
    ep.socket("/socket").channel<chat_room>("room:*");
    r.get("/", [](web::conn& c) { return c.html(200, kPage); });
    r.get("/assets/phoenix.js", [](web::conn& c) { return c.send(200, athanor_chat_phoenix_js, "text/javascript; charset=utf-8"); });
    ep.mount(r);
  });
}
