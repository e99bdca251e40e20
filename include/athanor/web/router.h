// The request/response object (`conn`, after Plug.Conn) and the router: routes with path
// parameters, plugs (middleware), static files and WebSocket endpoints.
//
//   athanor::web::router r;
//   r.plug([](conn& c) { if (c.header("x-token") != "s3cret") c.text(401, "no"); });   // halts: response sent
//   r.get("/hello/:name", [](conn& c) { return c.text(200, "Hello, " + c.param("name")); });
//   r.get("/files/*rest", [](conn& c) { return c.text(200, c.param("rest")); });
//   r.get("/slow", [](conn& c) -> athanor::task<void> { c.send_chunked(200); co_await c.chunk("a"); });
//   r.static_dir("/assets", "priv/static");
//
// A router is built before listen() and then only read: building it is not thread-safe, using it
// from many connection processes at once is. A conn belongs to its connection's process.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "athanor/runtime/proc.h"
#include "athanor/web/http.h"
#include "athanor/web/websocket.h"

namespace athanor::web {

namespace detail {
class transport;
class body_reader;
}

// A request body that could not be read: malformed chunked encoding (400), longer than
// server_config::max_body (413), not complete within server_config::request_timeout of the
// request's first byte (408), or cut short by the client (400). Thrown by conn::read_body() and
// conn::read_body_part(). A handler may catch it; if it escapes, the server answers with status()
// and closes the connection (a client error, not logged as a handler failure).
class body_error : public std::runtime_error {
 public:
  body_error(int status, const std::string& what) : std::runtime_error(what), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

// One HTTP request and its response, as handlers and plugs see them. Owned by the connection's
// process; not thread-safe.
class conn {
 public:
  // A request whose body is already known (`body`; "" for none). The server instead attaches a
  // reader, and the body is read from the connection only when asked for.
  conn(request_head head, std::string body, std::string remote);
  conn(const conn&) = delete;
  conn& operator=(const conn&) = delete;

  // ---- the request ----
  const std::string& method() const noexcept { return head_.method; }
  const std::string& path() const noexcept { return head_.path; }      // percent-encoded, as sent
  const std::string& query_string() const noexcept { return head_.query; }
  const request_head& head() const noexcept { return head_; }
  const std::string& remote() const noexcept { return remote_; }       // "a.b.c.d:port"

  // ---- the request body ----
  // A body is read from the connection only when the handler asks for it, as Plug's read_body
  // and Cowboy's read_body do: a 404, a 405 or a handler that ignores the body never pulls an
  // upload into memory (the server drops up to 64 KiB of unread body to keep the connection, and
  // closes it instead beyond that). A plain handler (one that is not a coroutine) cannot wait, so
  // its route's body is read whole before it runs; an async handler reads it itself.
  //
  // True if the request carries a body (Content-Length above 0, or chunked).
  bool has_body() const noexcept;
  // Reads the whole body, up to server_config::max_body, and returns it (a view of body(), valid
  // as long as the conn). Later calls return the same bytes. If read_body_part() took parts
  // first, returns what was left. Sends "100 Continue" first when the client asked for it. Throws
  // body_error when the body cannot be read (see there).
  task<std::string_view> read_body();
  // Streams the body: returns the next part (at most `max_bytes`, at least one byte), or nullopt
  // once the body has ended. Parts are not kept: memory stays bounded by `max_bytes` whatever the
  // upload's size (up to server_config::max_body in total). Throws body_error.
  task<std::optional<std::string>> read_body_part(std::size_t max_bytes = 64 * 1024);
  // The body that read_body() returned (or the constructor was given); "" for a request without
  // a body. Throws std::logic_error if the request has a body that was not read yet: call
  // `co_await c.read_body()` first (or use a plain handler, which gets it read).
  const std::string& body() const;
  // The first request header `name` (case-insensitive), or "" if absent.
  std::string_view header(std::string_view name) const;
  // A parameter: the path's (":name", "*glob"), else the query string's, else the urlencoded
  // form body's (once the body is read); "" if none has it.
  std::string param(std::string_view name) const;
  const param_list& path_params() const noexcept { return path_params_; }
  // The query string's parameters, decoded (computed on first use).
  const param_list& query_params();
  // The body's parameters when it is application/x-www-form-urlencoded and has been read, else
  // empty.
  const param_list& body_params();

  // Values plugs pass to handlers (Plug's assigns).
  std::unordered_map<std::string, std::string> assigns;

  // ---- the response ----
  // Adds a response header (sent as given). Returns *this.
  conn& put_header(std::string name, std::string value);
  // Sets status and body with a Content-Type; the response is then complete ("sent": later plugs
  // and the handler are skipped). Returns nothing, so a handler may `return c.text(...)`.
  void send(int status, std::string body, std::string_view content_type = "text/plain; charset=utf-8");
  void text(int status, std::string body) { send(status, std::move(body), "text/plain; charset=utf-8"); }
  void html(int status, std::string body) { send(status, std::move(body), "text/html; charset=utf-8"); }
  void json(int status, std::string body) { send(status, std::move(body), "application/json"); }
  // True once a response has been set or streaming has started.
  bool sent() const noexcept { return state_ != resp_state::none; }
  int status() const noexcept { return status_; }
  const std::string& resp_body() const noexcept { return resp_body_; }
  const std::vector<header_field>& resp_headers() const noexcept { return resp_headers_; }

  // Streaming (chunked) responses, for async handlers: send_chunked() writes the head now,
  // each chunk() writes one chunk now (suspending the process while the socket is full), and
  // the last chunk is written when the handler returns. chunk() returns false if the peer is gone.
  task<void> send_chunked(int status, std::string content_type = "text/plain; charset=utf-8");
  task<bool> chunk(std::string data);

  // Internal: how the server lets a conn stream.
  enum class resp_state : std::uint8_t { none, set, chunked };
  resp_state state() const noexcept { return state_; }
  void attach(detail::transport* io, std::string* out, bool keep_alive) noexcept {
    io_ = io;
    out_ = out;
    keep_alive_ = keep_alive;
  }
  void set_path_params(param_list p) { path_params_ = std::move(p); }
  // Internal: where the server's body reader lives (it outlives the conn's handler).
  void attach_body(detail::body_reader* r) noexcept;

 private:
  request_head head_;
  std::string body_;
  bool body_read_ = true;  // false while an attached reader still has unread body
  detail::body_reader* body_reader_ = nullptr;
  std::string remote_;
  param_list path_params_;
  std::unique_ptr<param_list> query_params_, body_params_;
  int status_ = 200;
  resp_state state_ = resp_state::none;
  bool keep_alive_ = true;
  std::vector<header_field> resp_headers_;
  std::string resp_body_;
  detail::transport* io_ = nullptr;
  std::string* out_ = nullptr;
};

class ws;

// Routes, plugs, static directories and WebSocket endpoints. Build it, then hand it to listen().
// Not thread-safe while being built; read-only (and so safe to share) afterwards.
class router {
 public:
  using handler = std::function<void(conn&)>;
  using async_handler = std::function<task<void>(conn&)>;
  using plug_fn = std::function<void(conn&)>;
  using ws_handler = std::function<proc(ws&)>;

  // Adds a plug: run on every request, in the order added, before routing. A plug that sends a
  // response halts the pipeline. Returns *this.
  router& plug(plug_fn p);

  // Adds a route. `pattern` is a path of literal segments, ":name" segments (one segment, decoded)
  // and an optional last "*name" (the rest of the path). `f` takes conn& and either returns
  // anything (a plain handler) or returns task<void> (an async handler, which may co_await).
  // HEAD requests use GET routes. Returns *this.
  template <class F>
  router& route(std::string method, std::string pattern, F f) {
    if constexpr (std::is_same_v<std::invoke_result_t<F&, conn&>, task<void>>) {
      add(std::move(method), std::move(pattern), nullptr, async_handler(std::move(f)));
    } else {
      add(std::move(method), std::move(pattern), handler([f = std::move(f)](conn& c) mutable { f(c); }), nullptr);
    }
    return *this;
  }
  template <class F> router& get(std::string p, F f) { return route("GET", std::move(p), std::move(f)); }
  template <class F> router& post(std::string p, F f) { return route("POST", std::move(p), std::move(f)); }
  template <class F> router& put(std::string p, F f) { return route("PUT", std::move(p), std::move(f)); }
  template <class F> router& patch(std::string p, F f) { return route("PATCH", std::move(p), std::move(f)); }
  template <class F> router& del(std::string p, F f) { return route("DELETE", std::move(p), std::move(f)); }

  // Serves the files under `dir` at `prefix` (GET/HEAD), with ETag / If-None-Match (304) and a
  // Content-Type from the extension. Paths with "." or ".." segments are refused (404).
  router& static_dir(std::string prefix, std::string dir);

  // Adds a WebSocket endpoint: a GET with a valid upgrade becomes a new process running
  // `h(ws)`; a request without one gets 426. Returns *this.
  router& websocket(std::string pattern, ws_handler h, ws_options opts = {});

  // ---- used by the server ----
  struct segment {
    enum class kind : std::uint8_t { literal, param, glob } k;
    std::string text;
  };
  struct route_entry {
    std::string method;
    std::vector<segment> segments;
    handler sync;
    async_handler async;
    ws_handler ws;
    std::shared_ptr<const ws_options> ws_opts;
    std::string static_root;  // static_dir routes
  };
  enum class match_kind { found, method_not_allowed, not_found };
  struct match_result {
    match_kind kind = match_kind::not_found;
    const route_entry* route = nullptr;
    param_list params;
    std::string allow;  // for 405
  };
  // Finds the route for `method` and the (encoded) `path`.
  match_result match(std::string_view method, std::string_view path) const;
  // Runs plugs then the route's handler (or a static file, or 404/405) on `c`.
  task<void> dispatch(conn& c) const;
  const std::vector<plug_fn>& plugs() const noexcept { return plugs_; }

 private:
  void add(std::string method, std::string pattern, handler h, async_handler a);
  std::vector<plug_fn> plugs_;
  std::vector<route_entry> routes_;
};

// The Content-Type for a file name's extension ("application/octet-stream" if unknown).
std::string_view mime_type(std::string_view filename) noexcept;

}  // namespace athanor::web
