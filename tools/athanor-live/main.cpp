// athanor-live: LiveView examples served to browsers running the official phoenix_live_view client.
//   athanor-live --port N [--host ADDR] [--sname NAME --cookie C [--join NODE]]
// Without --sname it runs without distribution (no EPMD, no cookie file).
//
// The contract other checks drive (keep it stable): /counter loads the official client and
// connects a LiveSocket at /live (/live/websocket, /live/longpoll); an element with id `count`
// holds the current integer, starting at 0; buttons with phx-click="inc" and phx-click="dec".
// Each page keeps its own count. /form is a sign-up form validated as the user types; /chat a
// chat on athanor-chat's room:<name> topics (its messages cross between the two). When ready it prints its URL ("http://HOST:PORT/") and, with
// --sname, its node name, each on a line of its own.
#include <chrono>
#include <cstdio>
#include <deque>
#include <stdexcept>
#include <string>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "athanor/live/token.h"
#include "athanor/live/view.h"
#include "athanor/web/pubsub.h"
#include "athanor/web/web.h"
#include "web_node.h"

extern const char athanor_live_phoenix_js[];
extern const char athanor_live_view_js[];

namespace {

using namespace athanor;

// /counter: the issue's contract.
struct counter : live::view<counter> {
  int count = 0;
  void mount(const term&, live::view_socket& s) { s.page_title("Count: 0"); }
  void handle_event(std::string_view event, const term&, live::view_socket& s) {
    if (event == "inc") ++count;
    if (event == "dec") --count;
    s.page_title("Count: " + std::to_string(count));
  }
  live::rendered render() const {
    static const live::html_template t(
        R"(<section class="counter"><h1>Count: <span id="count">{}</span></h1>)"
        R"(<button id="dec" phx-click="dec">-</button> <button id="inc" phx-click="inc">+</button></section>)");
    return t(count);
  }
};

// /form: a sign-up form validated on the server as the user types (phx-change) and on submit
// (phx-submit). An error shows next to a field once the user has touched it (the client marks
// untouched fields with "_unused_" keys) or once the form was submitted.
struct signup : live::view<signup> {
  std::string name, email, result;
  std::string name_error, email_error, password_error;

  static const term* field(const term& form, std::string_view key) {
    const term* user = form.find(term("user"));
    return user && user->is_map() ? user->find(term(key)) : nullptr;
  }
  static std::string text(const term& form, std::string_view key) {
    const term* v = field(form, key);
    return v && v->is_binary() ? std::string(v->as_binary()) : std::string();
  }
  static bool touched(const term& form, std::string_view key) {
    return field(form, std::string("_unused_") + std::string(key)) == nullptr;
  }
  // Validates `form`; shows the errors of the fields `all` or touched. True if valid.
  bool validate(const term& form, bool all) {
    name = text(form, "name");
    email = text(form, "email");
    const std::string password = text(form, "password");
    const std::string n = name.size() < 2 ? "must have at least 2 characters" : "";
    const std::string e = email.find('@') == std::string::npos ? "must have an @ sign" : "";
    const std::string p = password.size() < 8 ? "must have at least 8 characters" : "";
    name_error = all || touched(form, "name") ? n : "";
    email_error = all || touched(form, "email") ? e : "";
    password_error = all || touched(form, "password") ? p : "";
    return n.empty() && e.empty() && p.empty();
  }
  void mount(const term&, live::view_socket& s) { s.page_title("Sign up"); }
  void handle_event(std::string_view event, const term& form, live::view_socket&) {
    // How the browser tests kill this view's process (liveSocket.execJS with a push of "crash"):
    // the client shows the error, rejoins, and restores the form's input.
    if (event == "crash") throw std::runtime_error("crash requested");
    if (event == "validate") {
      result.clear();
      validate(form, false);
    } else if (event == "save") {
      if (validate(form, true)) {
        result = "Welcome, " + name + "!";
        name.clear();
        email.clear();
      } else {
        result.clear();
      }
    }
  }
  live::rendered render() const {
    static const live::html_template t(
        R"(<form id="signup" phx-change="validate" phx-submit="save">)"
        R"(<p><label>Name <input id="name" name="user[name]" value="{}" autocomplete="off"></label> <span class="error" id="name-error">{}</span></p>)"
        R"(<p><label>Email <input id="email" name="user[email]" value="{}" autocomplete="off"></label> <span class="error" id="email-error">{}</span></p>)"
        R"(<p><label>Password <input id="password" type="password" name="user[password]"></label> <span class="error" id="password-error">{}</span></p>)"
        R"(<button id="save">Sign up</button></form><p id="result">{}</p>)");
    return t(name, name_error, email, email_error, password_error, result);
  }
};

// /chat: a live chat on the same room:<name> topics as athanor-chat: messages sent here reach
// athanor-chat's clients and the other way round, on any node of the cluster. The view's process
// subscribes to its room (pubsub::subscribe), and each broadcast comes as handle_info.
struct chat : live::view<chat> {
  struct line {
    std::uint64_t id;
    std::string user, body;
  };
  std::string user, room;
  std::deque<line> lines;  // the last kKeep messages
  std::uint64_t next_id = 0;
  static constexpr std::size_t kKeep = 100;

  void mount(const term&, live::view_socket& s) { s.page_title("Chat"); }
  void handle_event(std::string_view event, const term& form, live::view_socket& s) {
    auto text = [&](const char* key) {
      const term* v = form.find(term(key));
      return v && v->is_binary() ? std::string(v->as_binary()) : std::string();
    };
    if (event == "join" && !text("user").empty() && !text("room").empty()) {
      if (!room.empty()) web::pubsub::unsubscribe("room:" + room);
      user = text("user");
      room = text("room");
      lines.clear();
      web::pubsub::subscribe("room:" + room);
      s.page_title("Chat: " + room);
    } else if (event == "send" && !room.empty() && !text("body").empty()) {
      web::broadcast("room:" + room, "new_msg", map({{term("user"), term(user)}, {term("body"), term(text("body"))}}));
    }
  }
  void handle_info(message& m, live::view_socket&) {
    auto* b = m.get_if<web::pubsub::broadcast_message>();
    if (!b || b->event != "new_msg" || b->topic != "room:" + room) return;
    const term* who = b->payload.find(term("user"));
    const term* body = b->payload.find(term("body"));
    if (!who || !body || !who->is_binary() || !body->is_binary()) return;
    lines.push_back(line{next_id++, std::string(who->as_binary()), std::string(body->as_binary())});
    if (lines.size() > kKeep) lines.pop_front();
  }
  live::rendered render() const {
    static const live::html_template joined(
        R"(<p id="status">In room {} as {}</p><div id="messages">{}</div>)"
        R"(<form id="say" phx-submit="send"><input id="body" name="body" autocomplete="off" placeholder="message">)"
        R"(<button id="send">Send</button></form>)");
    static const live::html_template entry(R"(<div class="msg" id="msg-{}"><b>{}</b> {}</div>)");
    static const live::html_template lobby(
        R"(<form id="join" phx-submit="join"><input id="user" name="user" placeholder="your name" required>)"
        R"( <input id="room" name="room" value="lobby" required> <button id="enter">Join</button></form>)");
    if (room.empty()) return lobby();
    live::comprehension list(entry);
    for (const line& l : lines) list.add(entry(l.id, l.user, l.body), std::to_string(l.id));
    return joined(room, user, std::move(list));
  }
};

constexpr const char* kIndex = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Athanor LiveView</title></head>
<body><h1>Athanor LiveView examples</h1>
<ul><li><a href="/counter">/counter</a>: a counter, one per page</li>
<li><a href="/form">/form</a>: a sign-up form validated as you type</li>
<li><a href="/chat">/chat</a>: a live chat, on the same rooms as athanor-chat</li></ul>
</body></html>
)html";

void print_usage() {
  std::printf(
      "Usage: athanor-live --port N [--host ADDR] [--sname NAME --cookie C [--join NODE]]\n"
      "\n"
      "LiveView examples for browsers running the official phoenix_live_view client: a counter\n"
      "at /counter, a validated sign-up form at /form and a chat at /chat on athanor-chat's rooms\n"
      "(the socket at /live). With --sname the node joins a cluster (Erlang distribution), and\n"
      "the chat's rooms span it. Pages are signed with ATHANOR_SECRET_KEY_BASE, else\n"
      "~/.athanor_secret_key_base (made once), so they survive a restart. Stops on SIGINT/SIGTERM.\n"
      "\n"
      "Options:\n"
      "  --port N        TCP port to serve on (default 4000; 0: any free port)\n"
      "  --host ADDR     address to listen on (default 127.0.0.1)\n"
      "  --sname NAME    run as node NAME@<host name> (or NAME@HOST)\n"
      "  --cookie C      the distribution cookie (default: ~/.erlang.cookie, as erl)\n"
      "  --join NODE     connect to NODE (another athanor-live or athanor-chat) at start\n"
      "  --help          this text\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (tools::asks_for_help(argc, argv)) {
    print_usage();
    return 0;
  }
  std::unique_ptr<live::live_router> lv;  // made once the node runs: its secret may be a file to create
  return tools::run_web_node("athanor-live", argc, argv, [&lv](web::router& r) {
    lv = std::make_unique<live::live_router>();
    lv->live<counter>("/counter");
    lv->live<signup>("/form");
    lv->live<chat>("/chat");
    r.get("/", [](web::conn& c) { return c.html(200, kIndex); });
    r.get("/assets/phoenix.js", [](web::conn& c) { return c.send(200, athanor_live_phoenix_js, "text/javascript; charset=utf-8"); });
    r.get("/assets/phoenix_live_view.js",
          [](web::conn& c) { return c.send(200, athanor_live_view_js, "text/javascript; charset=utf-8"); });
    lv->mount(r);
  });
}
