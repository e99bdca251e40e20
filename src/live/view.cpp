// LiveViews over Channels (view.h).
//
// Design
// ======
// A connected LiveView is a channel (web/channel.h) on topic "lv:<container id>": its process is
// the channel's process, so it inherits Channels' model whole — linked to its socket, a crash
// gives the client phx_error and a rejoin, frames leave in the order made. The channel type here
// (lv_channel) holds the view instance, the view_socket and the last tree sent: each callback is
// followed by a render and a diff against that tree (rendered.h), so the client always merges a
// diff against exactly what it has.
//
// State across the HTTP request and the join. The page and the join are served by different
// processes (maybe different nodes, maybe before and after a restart), so the page carries all
// the join needs: a session token signed with the site's secret (token.h) naming the view's path
// and a nonce, and a CSRF token derived from the same nonce, which the page's LiveSocket sends
// back in its params. The join checks both; either failing is the join error "stale", on which
// the client reloads the page (and gets fresh tokens) — never a refused socket, which the client
// would retry for ever.
//
// Finding the router from a join. Channel types are constructed by the socket with no argument;
// the socket's connect callback puts the router's registry id in the assigns, and the join looks
// the router up by it (a registry of weak references: a router lives while its routes do).
//
// Rejected:
//   * Server-side session storage keyed by the container id: it would not survive a restart or
//     reach another node, and it would grow with every page served.
//   * Rendering in the socket's process: one slow view would stall every other view of the page.
#include "athanor/live/view.h"

#include <openssl/rand.h>

#include <mutex>
#include <unordered_map>

#include "athanor/live/token.h"
#include "athanor/runtime/logger.h"
#include "athanor/term/json.h"
#include "athanor/web/channel.h"
#include "athanor/web/http.h"
#include "live/live_state.h"

namespace athanor::live {


namespace {

constexpr std::string_view kSessionSalt = "athanor live session";
constexpr std::string_view kCsrfSalt = "athanor live csrf";
constexpr std::string_view kClientVersion = "1.2.12";  // the phoenix_live_view the wire follows

// ---- the registry of routers ------------------------------------------------------------------

std::mutex g_mu;
std::unordered_map<std::int64_t, std::weak_ptr<detail::live_state>>& routers() {
  static std::unordered_map<std::int64_t, std::weak_ptr<detail::live_state>> r;
  return r;
}
std::int64_t g_next_id = 1;

std::shared_ptr<detail::live_state> find_router(const term& assigns) {
  const term* id = assigns.is_map() ? assigns.find(term("live_router")) : nullptr;
  if (!id || !id->is_int64()) return nullptr;
  std::lock_guard lock(g_mu);
  auto it = routers().find(id->as_int());
  return it == routers().end() ? nullptr : it->second.lock();
}

// ---- tokens -----------------------------------------------------------------------------------

std::string random_text(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), int(bytes)) != 1)
    throw token_error("live: the CSPRNG failed");
  return base64url_encode(raw);
}

// The CSRF token of a page: bound to its session's nonce, so it proves the join comes from a page
// this site served (a cross-site page can neither read it nor make it).
std::string csrf_token(const std::string& secret, std::string_view nonce) { return tag(secret, kCsrfSalt, nonce); }

// ---- terms ------------------------------------------------------------------------------------

const term* field(const term& m, std::string_view key) { return m.is_map() ? m.find(term(key)) : nullptr; }

term with(const term& m, std::string key, term value) {
  const auto old = m.map_entries();
  std::vector<std::pair<term, term>> entries(old.begin(), old.end());
  entries.emplace_back(term(std::move(key)), std::move(value));
  return map(entries);
}

// The query string of an absolute URL, decoded into a map of binaries.
term url_params(std::string_view url) {
  const std::size_t q = url.find('?');
  if (q == std::string_view::npos) return map({});
  std::string_view query = url.substr(q + 1);
  query = query.substr(0, query.find('#'));
  std::vector<std::pair<term, term>> entries;
  for (auto& [k, v] : web::parse_query(query)) entries.emplace_back(term(k), term(v));
  return map(entries);
}

// "user[name]" -> {"user", "name"}; "d[]" -> {"d"} (Phoenix's key paths).
std::vector<std::string> key_path(std::string_view name) {
  std::vector<std::string> parts;
  const std::size_t open = name.find('[');
  parts.emplace_back(name.substr(0, open));
  for (std::size_t at = open; at != std::string_view::npos;) {
    const std::size_t close = name.find(']', at);
    if (close == std::string_view::npos) break;
    if (close > at + 1) parts.emplace_back(name.substr(at + 1, close - at - 1));
    at = name.find('[', close);
  }
  return parts;
}

// Phoenix's _target: the changed field's key path as a list.
term target_path(std::string_view name) {
  std::vector<term> parts;
  for (std::string& p : key_path(name)) parts.emplace_back(std::move(p));
  return list(parts);
}

// The tree and what the view asked for besides it ("t", "e"), as the client extracts them.
term with_extras(term tree, view_socket& s) {
  if (std::optional<std::string> title = s.take_title()) tree = with(tree, "t", term(*title));
  std::vector<std::pair<std::string, term>> events = s.take_events();
  if (!events.empty()) {
    std::vector<term> items;
    for (auto& [name, payload] : events) items.push_back(list({term(name), payload}));
    tree = with(tree, "e", list(items));
  }
  return tree;
}

// ---- a connected view: a channel on "lv:<id>" -------------------------------------------------

web::join_reply stale() { return web::join_reply::error(map({{term("reason"), term("stale")}})); }

// The path of a URL ("http://host/counter?x=1" or "/counter?x=1" -> "/counter").
std::string url_path(std::string_view url) {
  if (const std::size_t scheme = url.find("://"); scheme != std::string_view::npos) {
    const std::size_t slash = url.find('/', scheme + 3);
    url = slash == std::string_view::npos ? std::string_view("/") : url.substr(slash);
  }
  return std::string(url.substr(0, url.find_first_of("?#")));
}

term navigation_payload(const view_socket::navigation& n) {
  if (n.kind == view_socket::navigation::full) return map({{term("to"), term(n.to)}});
  return map({{term("to"), term(n.to)}, {term("kind"), term(n.replace ? "replace" : "push")}});
}

struct lv_channel {
  std::shared_ptr<detail::live_state> app;
  std::unique_ptr<detail::view_base> view;
  std::optional<view_socket> vs;
  std::optional<rendered> last;

  web::join_reply join(std::string_view, const term& payload, web::socket& s) {
    app = find_router(s.assigns());
    const term* session = field(payload, "session");
    if (!app || !session || !session->is_binary()) return stale();
    std::optional<std::string> data = verify_token(app->secret, kSessionSalt, session->as_binary(), app->cfg.session_max_age);
    if (!data) return stale();  // not ours, tampered with, or expired
    term claims;
    try {
      claims = json::decode(*data);
    } catch (const std::exception&) {
      return stale();
    }
    const term* path = field(claims, "view");
    const term* nonce = field(claims, "n");
    if (!path || !path->is_binary() || !nonce || !nonce->is_binary()) return stale();
    const term* params = field(payload, "params");
    const term* csrf = params ? field(*params, "_csrf_token") : nullptr;
    if (!csrf || !csrf->is_binary() || csrf->as_binary() != csrf_token(app->secret, nonce->as_binary())) return stale();
    // A live navigation rejoins with "redirect": the session (this router's) vouches for any of
    // its views, as Phoenix's live_session does; a path it does not serve is "unauthorized" (the
    // client then loads the page).
    std::string view_path(path->as_binary());
    std::string url;
    if (const term* u = field(payload, "url"); u && u->is_binary()) url = std::string(u->as_binary());
    if (const term* r = field(payload, "redirect"); r && r->is_binary()) {
      url = std::string(r->as_binary());
      view_path = url_path(url);
      if (!app->views.count(view_path))
        return web::join_reply::error(map({{term("reason"), term("unauthorized")}}));
    }
    auto make = app->views.find(view_path);
    if (make == app->views.end()) return stale();  // a view this router no longer serves
    view = make->second();
    vs.emplace(true, s.channel_pid(), view_path);
    const term url_query = url_params(url);
    view->mount(url_query, *vs);
    view->handle_params(url_query, url, *vs);
    std::vector<std::pair<term, term>> reply;
    if (std::optional<view_socket::navigation> nav = vs->take_navigation()) {
      if (nav->kind == view_socket::navigation::navigate)
        return web::join_reply::error(map({{term("live_redirect"), navigation_payload(*nav)}}));
      if (nav->kind == view_socket::navigation::full)
        return web::join_reply::error(map({{term("redirect"), navigation_payload(*nav)}}));
      view->handle_params(url_params(nav->to), nav->to, *vs);  // a patch while mounting
      (void)vs->take_navigation();
      reply.emplace_back(term("live_patch"), navigation_payload(*nav));
    }
    rendered now = view->render();
    term tree = with_extras(diff(nullptr, now), *vs);
    last.emplace(std::move(now));
    reply.emplace_back(term("rendered"), tree);
    reply.emplace_back(term("liveview_version"), term(kClientVersion));
    return web::join_reply::ok(map(reply));
  }

  // The diff of a new render against the last one sent (with title and events); empty if none.
  term update() {
    rendered now = view->render();
    term d = with_extras(diff(&*last, now), *vs);
    last.emplace(std::move(now));
    return d;
  }

  // Acts on the navigation a callback asked for: a patch runs handle_params and tells the client
  // to update its URL (pushed before the reply that carries the patch's diff, as Phoenix orders
  // them); a navigation or redirect is pushed for the client to act on.
  void navigate(web::socket& s) {
    std::optional<view_socket::navigation> nav = vs->take_navigation();
    if (!nav) return;
    if (nav->kind == view_socket::navigation::patch) {
      view->handle_params(url_params(nav->to), nav->to, *vs);
      (void)vs->take_navigation();  // a patch asked for while patching is not followed (no loops)
      s.push("live_patch", navigation_payload(*nav));
    } else {
      s.push(nav->kind == view_socket::navigation::navigate ? "live_redirect" : "redirect", navigation_payload(*nav));
    }
  }

  web::in_reply reply_with(term d) {
    if (d.map_entries().empty()) return web::in_reply::ok();
    return web::in_reply::ok(map({{term("diff"), d}}));
  }

  web::in_reply handle_in(std::string_view event, const term& payload, web::socket& s) {
    if (event == "event") {
      const term* type = field(payload, "type");
      const term* name = field(payload, "event");
      if (!name || !name->is_binary()) return web::in_reply::ok();
      term value = map({});
      if (const term* v = field(payload, "value")) value = *v;
      if (type && *type == term("form") && value.is_binary()) {
        value = decode_form(value.as_binary());
        if (const term* meta = field(payload, "meta"); meta && meta->is_map()) {
          for (const auto& [k, v] : meta->map_entries()) {
            const bool is_target = k == term("_target") && v.is_binary();
            value = with(value, std::string(k.is_binary() ? k.as_binary() : ""), is_target ? target_path(v.as_binary()) : v);
          }
        }
      }
      view->handle_event(name->as_binary(), value, *vs);
      navigate(s);
      return reply_with(update());
    }
    if (event == "live_patch") {  // a patch link clicked, or the browser's back button
      const term* url = field(payload, "url");
      const std::string to = url && url->is_binary() ? std::string(url->as_binary()) : std::string();
      if (url_path(to) != vs->path()) return web::in_reply::ok(map({{term("link_redirect"), term(true)}}));
      view->handle_params(url_params(to), to, *vs);
      navigate(s);
      return reply_with(update());
    }
    if (event == "cids_destroyed") return web::in_reply::ok(map({{term("cids"), list({})}}));
    return web::in_reply::ok();  // cids_will_destroy...: answered, as every push must be
  }

  void handle_info(message& m, web::socket& s) {
    if (!view) return;
    view->handle_info(m, *vs);
    navigate(s);
    term d = update();
    if (!d.map_entries().empty()) s.push("diff", d);
  }

  void terminate(const term& reason, web::socket&) {
    if (view) view->terminate(reason, *vs);
  }
};

constexpr std::string_view kAppJs = R"js((function () {
  var meta = document.querySelector("meta[name='csrf-token']");
  var liveSocket = new LiveView.LiveSocket(SOCKET_PATH, Phoenix.Socket, {params: {_csrf_token: meta && meta.getAttribute("content")}});
  liveSocket.connect();
  window.liveSocket = liveSocket;
})();
)js";

}  // namespace

namespace detail {
std::optional<served_page> serve_page(const live_state& st, const std::string& path, const term& params) {
  auto make = st.views.find(path);
  if (make == st.views.end()) return std::nullopt;
  std::unique_ptr<view_base> v = make->second();
  view_socket vs(false, pid(), path);
  v->mount(params, vs);
  std::string url = path;
  for (const auto& [k, val] : params.map_entries()) {
    url += url.size() == path.size() ? '?' : '&';
    url += std::string(k.as_binary()) + "=" + std::string(val.as_binary());
  }
  v->handle_params(params, url, vs);
  served_page page;
  if (std::optional<view_socket::navigation> nav = vs.take_navigation()) {
    page.redirect_to = nav->to;  // navigation while rendering the page: an HTTP redirect, as Phoenix does
    return page;
  }
  const std::string body = to_html(v->render());
  const std::string nonce = random_text(18);
  page.session = sign_token(st.secret, kSessionSalt, json::encode(map({{term("view"), term(path)}, {term("n"), term(nonce)}})));
  page.csrf_token = csrf_token(st.secret, nonce);
  page.id = "phx-" + random_text(12);
  const std::string container = "<div id=\"" + page.id + "\" data-phx-main data-phx-session=\"" + page.session +
                                "\" data-phx-static=\"\">" + body + "</div>";
  page.html = st.cfg.layout(page_parts{vs.title().value_or(""), page.csrf_token, container});
  return page;
}
}  // namespace detail

term decode_form(std::string_view urlencoded) {
  term out = map({});
  for (auto& [key, value] : web::parse_query(urlencoded)) {
    const std::vector<std::string> parts = key_path(key);
    const bool append = key.size() >= 2 && key.substr(key.size() - 2) == "[]";
    // Walks down the nested maps, creating them, and sets the leaf (a list grows for "name[]").
    std::function<term(const term&, std::size_t)> put = [&](const term& node, std::size_t i) -> term {
      const term base = node.is_map() ? node : map({});
      const std::string& k = parts[i];
      const term* old = base.find(term(k));
      if (i + 1 == parts.size()) {
        if (!append) return with(base, k, term(value));
        std::vector<term> items;
        if (old && old->is_list()) {
          const auto existing = old->list_elements();
          items.assign(existing.begin(), existing.end());
        }
        items.emplace_back(value);
        return with(base, k, list(items));
      }
      return with(base, k, put(old ? *old : map({}), i + 1));
    };
    if (!parts.empty()) out = put(out, 0);
  }
  return out;
}

std::string default_layout(const page_parts& page) {
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"csrf-token\" content=\"";
  html += escape_html(page.csrf_token);
  html += "\">\n<title>";
  html += escape_html(page.title);
  html +=
      "</title>\n<script defer phx-track-static src=\"/assets/phoenix.js\"></script>\n"
      "<script defer phx-track-static src=\"/assets/phoenix_live_view.js\"></script>\n"
      "<script defer src=\"/assets/athanor_live.js\"></script>\n</head>\n<body>\n";
  html += page.container;
  html += "\n</body>\n</html>\n";
  return html;
}

live_router::live_router(live_config config) : state_(std::make_shared<detail::live_state>()) {
  state_->cfg = std::move(config);
  state_->secret = state_->cfg.secret_key_base.empty() ? secret_key_base() : state_->cfg.secret_key_base;
  if (state_->secret.size() < 32) throw token_error("live_config::secret_key_base must be at least 32 bytes");
  {
    std::lock_guard lock(g_mu);
    state_->id = g_next_id++;
    routers()[state_->id] = state_;
  }
  state_->socket = &state_->endpoint.socket(state_->cfg.socket_path);
  state_->socket->connect([id = state_->id](const web::connect_info&) -> std::optional<term> {
        return map({{term("live_router"), term(id)}});
      })
      .channel<lv_channel>("lv:*");
}

live_router::~live_router() {
  std::lock_guard lock(g_mu);
  auto it = routers().find(state_->id);
  if (it != routers().end() && it->second.expired()) routers().erase(it);
}

void live_router::add(std::string path, std::function<std::unique_ptr<detail::view_base>()> make) {
  state_->views[std::move(path)] = std::move(make);
}

void live_router::mount(web::router& r) const {
  std::shared_ptr<detail::live_state> st = state_;
  for (const auto& [path, make] : st->views) {
    r.get(path, [st, path = path](web::conn& c) {
      std::vector<std::pair<term, term>> params;
      for (auto& [k, val] : c.query_params()) params.emplace_back(term(k), term(val));
      detail::served_page page = *detail::serve_page(*st, path, map(params));
      if (!page.redirect_to.empty()) {
        c.put_header("location", page.redirect_to);
        return c.text(302, "");
      }
      c.html(200, page.html);
    });
  }
  std::string js(kAppJs);
  js.replace(js.find("SOCKET_PATH"), 11, json::encode(term(st->cfg.socket_path)));
  r.get("/assets/athanor_live.js", [js](web::conn& c) { c.send(200, js, "text/javascript; charset=utf-8"); });
  st->endpoint.mount(r);
}

}  // namespace athanor::live
