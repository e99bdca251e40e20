// conn, the router and static files.
//
// Routes are matched in the order added, segment by segment; the path is split on '/' before
// percent-decoding, so "%2F" inside a ":name" segment stays part of that segment. Static files are
// read on the dirty I/O pool (a cold disk read must not stall a scheduler) and are identified by a
// strong ETag made of size and modification time: cheap, and it changes whenever the file does.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "athanor/runtime/dirty.h"
#include "athanor/web/router.h"
#include "web/body_reader.h"
#include "web/transport.h"

namespace athanor::web {

// ---- conn ----------------------------------------------------------------------------------------

conn::conn(request_head head, std::string body, std::string remote)
    : head_(std::move(head)), body_(std::move(body)), remote_(std::move(remote)) {}

void conn::attach_body(detail::body_reader* r) noexcept {
  body_reader_ = r;
  body_read_ = !r || r->done();
}

bool conn::has_body() const noexcept {
  return (head_.content_length && *head_.content_length > 0) || head_.chunked;
}

task<std::string_view> conn::read_body() {
  if (!body_read_) {
    co_await body_reader_->read_rest(body_);
    body_read_ = true;
    body_params_.reset();  // a form read now has parameters
  }
  co_return std::string_view(body_);
}

task<std::optional<std::string>> conn::read_body_part(std::size_t max_bytes) {
  if (body_read_) co_return std::nullopt;
  std::optional<std::string> part = co_await body_reader_->next(max_bytes);
  if (!part) body_read_ = true;
  co_return part;
}

const std::string& conn::body() const {
  if (!body_read_) {
    throw std::logic_error("athanor::web::conn::body: the request body has not been read: co_await c.read_body() first");
  }
  return body_;
}

std::string_view conn::header(std::string_view name) const {
  for (const auto& h : head_.headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

const param_list& conn::query_params() {
  if (!query_params_) query_params_ = std::make_unique<param_list>(parse_query(head_.query));
  return *query_params_;
}

const param_list& conn::body_params() {
  if (!body_params_) {
    std::string_view ct = header("content-type");
    std::size_t semi = ct.find(';');
    std::string_view mt = ct.substr(0, semi);
    while (!mt.empty() && mt.back() == ' ') mt.remove_suffix(1);
    const bool form = body_read_ && iequals(mt, "application/x-www-form-urlencoded");
    body_params_ = std::make_unique<param_list>(form ? parse_query(body_) : param_list{});
  }
  return *body_params_;
}

std::string conn::param(std::string_view name) const {
  for (const auto& [k, v] : path_params_)
    if (k == name) return v;
  auto* self = const_cast<conn*>(this);  // the parsed forms are caches
  for (const auto& [k, v] : self->query_params())
    if (k == name) return v;
  for (const auto& [k, v] : self->body_params())
    if (k == name) return v;
  return {};
}

conn& conn::put_header(std::string name, std::string value) {
  resp_headers_.push_back(header_field{std::move(name), std::move(value)});
  return *this;
}

void conn::send(int status, std::string body, std::string_view content_type) {
  status_ = status;
  resp_body_ = std::move(body);
  bool has_ct = false;
  for (const auto& h : resp_headers_) has_ct |= iequals(h.name, "content-type");
  if (!has_ct && !content_type.empty()) resp_headers_.push_back(header_field{"content-type", std::string(content_type)});
  state_ = resp_state::set;
}

task<void> conn::send_chunked(int status, std::string content_type) {
  if (!io_) throw std::logic_error("athanor::web::conn::send_chunked: not attached to a connection");
  status_ = status;
  state_ = resp_state::chunked;
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + std::string(status_text(status)) + "\r\n";
  head += "transfer-encoding: chunked\r\ncontent-type: " + content_type + "\r\n";
  for (const auto& h : resp_headers_) head += h.name + ": " + h.value + "\r\n";
  if (!keep_alive_) head += "connection: close\r\n";
  head += "\r\n";
  std::string all = std::move(*out_);
  out_->clear();
  all += head;
  co_await io_->write_all(std::move(all), std::chrono::milliseconds(30000));
}

task<bool> conn::chunk(std::string data) {
  if (state_ != resp_state::chunked) throw std::logic_error("athanor::web::conn::chunk: call send_chunked first");
  if (data.empty()) co_return true;  // an empty chunk would end the body
  char size[24];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string frame(size, std::size_t(n));
  frame += data;
  frame += "\r\n";
  bool ok = co_await io_->write_all(std::move(frame), std::chrono::milliseconds(30000));
  co_return ok;
}

// ---- router --------------------------------------------------------------------------------------

namespace {

std::vector<std::string_view> split_path(std::string_view p) {
  std::vector<std::string_view> out;
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  while (!p.empty()) {
    std::size_t slash = p.find('/');
    out.push_back(p.substr(0, slash));
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  return out;
}

std::vector<router::segment> compile(std::string_view pattern) {
  std::vector<router::segment> segs;
  auto parts = split_path(pattern);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string_view s = parts[i];
    if (!s.empty() && s[0] == ':') {
      segs.push_back({router::segment::kind::param, std::string(s.substr(1))});
    } else if (!s.empty() && s[0] == '*') {
      if (i + 1 != parts.size()) throw std::invalid_argument("athanor::web::router: '*glob' must be the last segment");
      segs.push_back({router::segment::kind::glob, std::string(s.substr(1))});
    } else {
      segs.push_back({router::segment::kind::literal, std::string(s)});
    }
  }
  return segs;
}

std::string decode_segment(std::string_view s) {
  auto d = percent_decode(s, false);
  return d ? std::move(*d) : std::string(s);
}

// Matches `segs` against the path's segments; fills params on success.
bool match_segments(const std::vector<router::segment>& segs, const std::vector<std::string_view>& parts, param_list& params) {
  params.clear();
  std::size_t i = 0;
  for (const auto& s : segs) {
    if (s.k == router::segment::kind::glob) {
      std::string rest;
      for (std::size_t j = i; j < parts.size(); ++j) {
        if (j > i) rest += '/';
        rest += decode_segment(parts[j]);
      }
      params.emplace_back(s.text, std::move(rest));
      return true;
    }
    if (i >= parts.size()) return false;
    if (s.k == router::segment::kind::literal) {
      if (parts[i] != s.text) return false;
    } else {
      if (parts[i].empty()) return false;
      params.emplace_back(s.text, decode_segment(parts[i]));
    }
    ++i;
  }
  return i == parts.size();
}

struct file_reply {
  int status = 404;
  std::string body;
  std::string etag;
};

// Runs on the dirty I/O pool: stat, compare the ETag, read.
file_reply read_static(const std::string& file, const std::string& if_none_match, bool head_only) {
  file_reply r;
  struct stat st{};
  if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return r;
  char tag[64];
  std::snprintf(tag, sizeof tag, "\"%llx-%llx\"", static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec) * 1000000000ull + static_cast<unsigned long long>(st.st_mtim.tv_nsec));
  r.etag = tag;
  // If-None-Match: "*" or a list of entity tags; weak comparison (RFC 9110 §13.1.2).
  std::string_view inm = if_none_match;
  bool matched = false;
  while (!inm.empty() && !matched) {
    std::size_t comma = inm.find(',');
    std::string_view t = inm.substr(0, comma);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (t.substr(0, 2) == "W/") t.remove_prefix(2);
    matched = t == "*" || t == r.etag;
    if (comma == std::string_view::npos) break;
    inm.remove_prefix(comma + 1);
  }
  if (matched) {
    r.status = 304;
    return r;
  }
  r.status = 200;
  if (head_only) {
    r.body.assign(std::size_t(0), '\0');
    return r;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    r.status = 404;
    return r;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  r.body = std::move(ss).str();
  return r;
}

task<void> serve_static(const router::route_entry* route, conn* c, param_list params) {
  std::string rel = params.empty() ? std::string() : params.back().second;
  for (std::string_view seg : split_path(rel)) {
    if (seg == "." || seg == ".." || seg.empty() || seg.find('\0') != std::string_view::npos) {
      c->text(404, "Not Found");
      co_return;
    }
  }
  if (rel.empty()) {
    c->text(404, "Not Found");
    co_return;
  }
  std::string file = route->static_root + "/" + rel;
  std::string inm(c->header("if-none-match"));
  bool head_only = false;  // HEAD still needs Content-Length: read the file (small files are the norm)
  auto job = [file, inm, head_only] { return read_static(file, inm, head_only); };
  file_reply r = co_await dirty_io(std::move(job));
  if (r.status == 404) {
    c->text(404, "Not Found");
    co_return;
  }
  c->put_header("etag", r.etag);
  c->put_header("cache-control", "public, max-age=0, must-revalidate");
  if (r.status == 304) {
    c->send(304, std::string(), "");
    co_return;
  }
  c->send(200, std::move(r.body), mime_type(file));
}

}  // namespace

router& router::plug(plug_fn p) {
  plugs_.push_back(std::move(p));
  return *this;
}

void router::add(std::string method, std::string pattern, handler h, async_handler a) {
  route_entry e;
  e.method = std::move(method);
  e.segments = compile(pattern);
  e.sync = std::move(h);
  e.async = std::move(a);
  routes_.push_back(std::move(e));
}

router& router::static_dir(std::string prefix, std::string dir) {
  route_entry e;
  e.method = "GET";
  e.segments = compile(prefix);
  e.segments.push_back({segment::kind::glob, "path"});
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  e.static_root = std::move(dir);
  routes_.push_back(std::move(e));
  return *this;
}

router& router::websocket(std::string pattern, ws_handler h, ws_options opts) {
  route_entry e;
  e.method = "GET";
  e.segments = compile(pattern);
  e.ws = std::move(h);
  e.ws_opts = std::make_shared<const ws_options>(std::move(opts));
  routes_.push_back(std::move(e));
  return *this;
}

router::match_result router::match(std::string_view method, std::string_view path) const {
  match_result m;
  auto parts = split_path(path);
  param_list params;
  for (const auto& r : routes_) {
    if (!match_segments(r.segments, parts, params)) continue;
    if (r.method == method || (method == "HEAD" && r.method == "GET")) {
      m.kind = match_kind::found;
      m.route = &r;
      m.params = std::move(params);
      return m;
    }
    m.kind = match_kind::method_not_allowed;
    if (m.allow.find(r.method) == std::string::npos) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += r.method;
      if (r.method == "GET") m.allow += ", HEAD";
    }
  }
  return m;
}

task<void> router::dispatch(conn& c) const {
  for (const auto& p : plugs_) {
    p(c);
    if (c.sent()) co_return;
  }
  match_result m = match(c.method(), c.path());
  if (m.kind == match_kind::not_found) {
    c.text(404, "Not Found");
    co_return;
  }
  if (m.kind == match_kind::method_not_allowed) {
    c.put_header("allow", m.allow);
    c.text(405, "Method Not Allowed");
    co_return;
  }
  const route_entry* r = m.route;
  if (r->ws) {
    // A WebSocket route reached without a valid upgrade (the server handles real upgrades).
    c.put_header("upgrade", "websocket");
    c.put_header("sec-websocket-version", "13");
    c.text(426, "Upgrade Required");
    co_return;
  }
  if (!r->static_root.empty()) {
    co_await serve_static(r, &c, std::move(m.params));
    co_return;
  }
  c.set_path_params(std::move(m.params));
  if (r->async) {
    co_await r->async(c);
  } else {
    (void)co_await c.read_body();  // a plain handler cannot wait for its body: it gets it read
    r->sync(c);
  }
}

std::string_view mime_type(std::string_view filename) noexcept {
  std::size_t dot = filename.rfind('.');
  std::size_t slash = filename.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) return "application/octet-stream";
  std::string_view ext = filename.substr(dot + 1);
  struct entry {
    std::string_view ext, type;
  };
  static constexpr entry kTypes[] = {
      {"html", "text/html; charset=utf-8"},   {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},     {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"},   {"xml", "application/xml"},
      {"svg", "image/svg+xml"},               {"png", "image/png"},
      {"jpg", "image/jpeg"},                  {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},                   {"webp", "image/webp"},
      {"avif", "image/avif"},                 {"ico", "image/vnd.microsoft.icon"},
      {"wasm", "application/wasm"},           {"pdf", "application/pdf"},
      {"woff", "font/woff"},                  {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},                    {"otf", "font/otf"},
      {"mp4", "video/mp4"},                   {"webm", "video/webm"},
      {"mp3", "audio/mpeg"},                  {"ogg", "audio/ogg"},
      {"wav", "audio/wav"},                   {"map", "application/json"},
      {"csv", "text/csv; charset=utf-8"},     {"md", "text/markdown; charset=utf-8"},
      {"zip", "application/zip"},             {"gz", "application/gzip"},
  };
  for (const auto& e : kTypes)
    if (iequals(e.ext, ext)) return e.type;
  return "application/octet-stream";
}

}  // namespace athanor::web
