// athanor::live views: Phoenix LiveView for the official phoenix_live_view client (1.2). State
// lives in a process on the server, the server renders HTML, and only what changed travels.
//
//   struct counter : live::view<counter> {
//     int count = 0;
//     void handle_event(std::string_view event, const term&, live::view_socket&) {
//       if (event == "inc") ++count;
//       if (event == "dec") --count;
//     }
//     live::rendered render() const {
//       static const live::html_template t(R"(<span id="count">{}</span>)"
//                                          R"(<button phx-click="dec">-</button><button phx-click="inc">+</button>)");
//       return t(count);
//     }
//   };
//   live::live_router lv;
//   lv.live<counter>("/counter");
//   web::router r;
//   lv.mount(r);        // GET /counter (the page), /live/websocket and /live/longpoll (the socket)
//
// Lifecycle (Phoenix's): GET /counter constructs the view, mounts it (connected() false), renders
// it into the page inside a container carrying a signed session token; the page's LiveSocket
// joins topic "lv:<container id>" with that token, and a new instance of the view is mounted
// again, connected, in a process of its own (one per connected page), and its full render is the
// join's reply. Each event (phx-click, phx-change...) runs handle_event and is answered with the
// diff of the new render against the last one sent; messages to the view's process (PubSub
// broadcasts, timers) run handle_info and push the diff. A view that throws ends its process:
// the client shows the error and rejoins, mounting afresh. What the client sends is checked: a
// session token not signed with this site's secret, or expired, and a CSRF token that does not
// match the page, are answered with the join error "stale" (the client reloads the page).
//
// Thread-safety: a live_router is built, then mounted, on one thread, and read only afterwards.
// A view instance and its view_socket belong to one process (the view's, or the HTTP request's
// for the dead render).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "athanor/live/rendered.h"
#include "athanor/runtime/message.h"
#include "athanor/term/term.h"
#include "athanor/web/router.h"

namespace athanor::live {

// A view's link to its page (Phoenix's socket inside a LiveView). Owned by the view's process.
class view_socket {
 public:
  // False during the dead (HTTP) render, true once the page's client has joined.
  bool connected() const noexcept { return connected_; }
  // The view's process (connected), for subscriptions and timers that come back as handle_info.
  pid self() const noexcept { return self_; }
  // The page's URL path ("/counter").
  const std::string& path() const noexcept { return path_; }
  // Sets the page title (document.title; the layout's <title> in the dead render).
  void page_title(std::string title) { title_ = std::move(title); }
  // Dispatches window event "phx:<event>" with `payload` (a map) in the page after the next patch,
  // and to hooks' handleEvent (Phoenix's push_event).
  void push_event(std::string event, term payload) { events_.emplace_back(std::move(event), std::move(payload)); }

  // Live navigation, acted on once the callback returns (Phoenix's push_patch, push_navigate and
  // redirect; the last call wins). push_patch: the page's URL becomes `to` (a path of this view,
  // with a new query), handle_params runs with its params, and the page is patched: no new mount,
  // and the browser's history gets the URL (`replace`: replaces the entry instead of pushing).
  void push_patch(std::string to, bool replace = false) { nav_ = navigation{navigation::patch, std::move(to), replace}; }
  // push_navigate: the page moves to the view at `to` (another view of the same live_router)
  // without reloading: the client rejoins, and that view mounts.
  void push_navigate(std::string to, bool replace = false) {
    nav_ = navigation{navigation::navigate, std::move(to), replace};
  }
  // redirect: the browser loads `to` (any URL) as a new page.
  void redirect(std::string to) { nav_ = navigation{navigation::full, std::move(to), false}; }

  // Internal: what the next render sends besides the tree.
  view_socket(bool connected, pid self, std::string path) : connected_(connected), self_(self), path_(std::move(path)) {}
  std::optional<std::string> take_title() { return std::exchange(title_, std::nullopt); }
  std::vector<std::pair<std::string, term>> take_events() { return std::exchange(events_, {}); }
  const std::optional<std::string>& title() const noexcept { return title_; }
  struct navigation {
    enum kind_t { patch, navigate, full } kind;
    std::string to;
    bool replace;
  };
  std::optional<navigation> take_navigation() { return std::exchange(nav_, std::nullopt); }

 private:
  bool connected_;
  pid self_;
  std::string path_;
  std::optional<std::string> title_;
  std::vector<std::pair<std::string, term>> events_;
  std::optional<navigation> nav_;
};

// Optional base for view types (`struct counter : live::view<counter>`): documents the interface.
// A view type V must be default-constructible and have
//   rendered render() const;
// and may have
//   void mount(const term& params, view_socket& s);      params: the URL's query (a map of binaries)
//   void handle_params(const term& params, std::string_view url, view_socket& s);
//     after mount, and after each live patch (push_patch, or a patch link in the page) with the
//     new URL's query: where a view reads what it shows from the URL
//   void handle_event(std::string_view event, const term& value, view_socket& s);
//     value: a click's phx-value-* map; a form's fields decoded as Phoenix decodes them
//     (decode_form: nested maps for name[key], "_target" the changed field's path)
//   void handle_info(message& m, view_socket& s);
//   void terminate(const term& reason, view_socket& s);
template <class V>
struct view {};

// A form event's URL-encoded fields decoded as Plug.Conn.Query.decode does: "a=1&b[c]=2&d[]=3" is
// {"a": "1", "b": {"c": "2"}, "d": ["3"]}; a key given twice keeps its last value. Malformed
// percent escapes are kept as written.
term decode_form(std::string_view urlencoded);

// What a layout gets to build the page around a view (Phoenix's root layout).
struct page_parts {
  std::string_view title;       // the view's page_title, or "" if it set none
  std::string_view csrf_token;  // for <meta name="csrf-token">, sent back by the client's LiveSocket params
  std::string_view container;   // the view's container element with its dead render inside
};

// The page default_layout() builds: the container in <body>, loading /assets/phoenix.js and
// /assets/phoenix_live_view.js (the official clients; serve them, e.g. r.static_dir("/assets",
// ...)) and /assets/athanor_live.js (served by live_router::mount), which connects the LiveSocket.
std::string default_layout(const page_parts& page);

struct live_config {
  // The secret tokens are signed with (at least 32 bytes); "" reads secret_key_base() (token.h):
  // ATHANOR_SECRET_KEY_BASE, else ~/.athanor_secret_key_base.
  std::string secret_key_base;
  // The socket's path: the client's LiveSocket("/live", ...) connects to /live/websocket.
  std::string socket_path = "/live";
  // How long a page's session token joins (Phoenix: two weeks).
  std::chrono::seconds session_max_age{14 * 24 * 3600};
  std::function<std::string(const page_parts&)> layout = default_layout;
};

namespace detail {
class view_base {
 public:
  virtual ~view_base() = default;
  virtual void mount(const term& params, view_socket& s) = 0;
  virtual void handle_params(const term& params, std::string_view url, view_socket& s) = 0;
  virtual void handle_event(std::string_view event, const term& value, view_socket& s) = 0;
  virtual void handle_info(message& m, view_socket& s) = 0;
  virtual void terminate(const term& reason, view_socket& s) = 0;
  virtual rendered render() const = 0;
};

template <class V>
class view_model final : public view_base {
 public:
  void mount(const term& params, view_socket& s) override {
    if constexpr (requires { v_.mount(params, s); }) v_.mount(params, s);
  }
  void handle_params(const term& params, std::string_view url, view_socket& s) override {
    if constexpr (requires { v_.handle_params(params, url, s); }) v_.handle_params(params, url, s);
  }
  void handle_event(std::string_view event, const term& value, view_socket& s) override {
    if constexpr (requires { v_.handle_event(event, value, s); }) v_.handle_event(event, value, s);
  }
  void handle_info(message& m, view_socket& s) override {
    if constexpr (requires { v_.handle_info(m, s); }) v_.handle_info(m, s);
  }
  void terminate(const term& reason, view_socket& s) override {
    if constexpr (requires { v_.terminate(reason, s); }) v_.terminate(reason, s);
  }
  rendered render() const override { return v_.render(); }

 private:
  V v_;
};

struct live_state;
// A page as GET serves it, and what its LiveSocket joins with.
struct served_page {
  std::string html, id, session, csrf_token;
  std::string redirect_to;  // not empty: the view navigated while the page rendered (no html)
};
// The dead render of the view at `path` with the URL's `params`; nullopt if no view is there.
std::optional<served_page> serve_page(const live_state& st, const std::string& path, const term& params);
}  // namespace detail

// A site's LiveViews by path, and their socket (Phoenix's `live "/path", View` routes with the
// endpoint's `socket "/live"`).
class live_router {
 public:
  explicit live_router(live_config config = {});
  ~live_router();
  live_router(const live_router&) = delete;
  live_router& operator=(const live_router&) = delete;

  // Serves view V at `path` (an exact path, "/counter"). Returns *this.
  template <class V>
  live_router& live(std::string path) {
    static_assert(std::is_default_constructible_v<V>, "a view type is constructed for every page and every join");
    add(std::move(path), [] { return std::unique_ptr<detail::view_base>(new detail::view_model<V>()); });
    return *this;
  }
  // Adds GET for every view's path, /assets/athanor_live.js, and the socket (socket_path +
  // "/websocket" and "/longpoll") to `r`. Call once, after declaring the views.
  void mount(web::router& r) const;

  // Internal (test_view).
  const std::shared_ptr<detail::live_state>& state() const noexcept { return state_; }

 private:
  void add(std::string path, std::function<std::unique_ptr<detail::view_base>()> make);
  std::shared_ptr<detail::live_state> state_;
};

}  // namespace athanor::live
