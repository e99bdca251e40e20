// test_view (test_view.h): a LiveView joined through web::test_socket, its client tree kept with
// merge_diff. Frames are taken in arrival order, so a diff pushed by handle_info before an
// event's reply is merged before that reply's diff, as the browser merges them.
#include "athanor/live/test_view.h"

#include "athanor/term/json.h"
#include "athanor/web/channel_test.h"
#include "live/live_state.h"

namespace athanor::live {

namespace {
using clock = std::chrono::steady_clock;

const term* get(const term& m, std::string_view key) { return m.is_map() ? m.find(term(key)) : nullptr; }

test_view::duration left(clock::time_point deadline) {
  const auto d = std::chrono::ceil<test_view::duration>(deadline - clock::now());
  return d.count() < 0 ? test_view::duration(0) : d;
}
}  // namespace

test_view::test_view(test_view&&) noexcept = default;
test_view& test_view::operator=(test_view&&) noexcept = default;
test_view::~test_view() = default;

task<test_view> test_view::live(const live_router& router, std::string path) {
  const std::shared_ptr<detail::live_state>& st = router.state();
  const std::size_t q = path.find('?');
  std::vector<std::pair<term, term>> params;
  if (q != std::string::npos) {
    for (auto& [k, v] : web::parse_query(std::string_view(path).substr(q + 1))) params.emplace_back(term(k), term(v));
  }
  const std::string bare = path.substr(0, q);
  std::optional<detail::served_page> page = detail::serve_page(*st, bare, map(params));
  if (!page) throw std::runtime_error("live::test_view: no view at " + bare);
  if (!page->redirect_to.empty()) throw std::runtime_error("live::test_view: " + bare + " redirects to " + page->redirect_to);
  test_view v;
  v.url_ = path;
  v.dead_html_ = std::move(page->html);
  v.topic_ = "lv:" + page->id;
  v.socket_ = std::make_unique<web::test_socket>(*st->socket, map({{term("live_router"), term(st->id)}}));
  const term payload = map({{term("url"), term("http://localhost" + path)},
                            {term("params"), map({{term("_csrf_token"), term(page->csrf_token)}, {term("_mounts"), term(0)}})},
                            {term("session"), term(page->session)},
                            {term("static"), term(atom("nil"))},
                            {term("sticky"), term(false)}});
  std::optional<web::test_socket::reply> joined = co_await v.socket_->join(v.topic_, payload, default_timeout);
  if (!joined) throw std::runtime_error("live::test_view: no join reply for " + path);
  if (joined->status != "ok") throw std::runtime_error("live::test_view: join refused: " + json::encode(joined->response));
  if (const term* patched = get(joined->response, "live_patch")) v.url_ = std::string(get(*patched, "to")->as_binary());
  const term* rendered_tree = get(joined->response, "rendered");
  if (!rendered_tree) throw std::runtime_error("live::test_view: a join reply without rendered");
  v.apply(*rendered_tree);
  co_return v;
}

void test_view::apply(const term& diff) {
  std::vector<std::pair<term, term>> tree_part;
  for (const auto& [k, val] : diff.map_entries()) {
    if (k == term("t") && val.is_binary()) {
      title_ = std::string(val.as_binary());
    } else if (k == term("e") && val.is_list()) {
      for (const term& e : val.list_elements()) {
        auto it = e.list_elements().begin();
        const term name = *it;
        ++it;
        events_.emplace_back(std::string(name.as_binary()), *it);
      }
    } else if (k != term("r")) {
      tree_part.emplace_back(k, val);
    }
  }
  merge_diff(tree_, map(tree_part));
}

std::string test_view::html() const { return tree_to_html(tree_); }

task<std::string> test_view::send_event(term payload) { return send_event_as("event", std::move(payload)); }

task<std::string> test_view::send_event_as(std::string event, term payload) {
  const std::string ref = socket_->push(topic_, event, payload);
  const clock::time_point deadline = clock::now() + default_timeout;
  for (;;) {
    std::vector<web::channel_message> frames = co_await socket_->received(left(deadline));
    bool answered = false;
    for (const web::channel_message& m : frames) {
      if (m.topic != topic_) continue;
      if (m.event == "diff") {
        apply(m.payload);
      } else if (m.event == "live_patch") {
        url_ = std::string(get(m.payload, "to")->as_binary());
      } else if (m.event == "live_redirect" || m.event == "redirect") {
        redirect_ = std::string(get(m.payload, "to")->as_binary());
      } else if (m.event == "phx_reply" && m.ref == ref) {
        answered = true;
        const term* response = get(m.payload, "response");
        if (const term* d = response ? get(*response, "diff") : nullptr) apply(*d);
      }
    }
    if (answered) co_return html();
    if (clock::now() >= deadline) throw std::runtime_error("live::test_view: no reply to the event");
  }
}

task<std::string> test_view::click(std::string event, term value) {
  return send_event(map({{term("type"), term("click")}, {term("event"), term(std::move(event))}, {term("value"), std::move(value)}}));
}

task<std::string> test_view::change(std::string event, std::string form, std::string target) {
  return send_event(map({{term("type"), term("form")},
                         {term("event"), term(std::move(event))},
                         {term("value"), term(std::move(form))},
                         {term("meta"), map({{term("_target"), term(target.empty() ? std::string("undefined") : target)}})},
                         {term("uploads"), map({})}}));
}

task<std::string> test_view::submit(std::string event, std::string form) {
  return send_event(map({{term("type"), term("form")},
                         {term("event"), term(std::move(event))},
                         {term("value"), term(std::move(form))},
                         {term("meta"), map({})}}));
}

task<std::string> test_view::patch(std::string to) {
  url_ = to;
  return send_event_as("live_patch", map({{term("url"), term("http://localhost" + to)}}));
}

task<std::string> test_view::render(duration wait) {
  for (const web::channel_message& m : co_await socket_->received(wait)) {
    if (m.topic == topic_ && m.event == "diff") apply(m.payload);
  }
  co_return html();
}

}  // namespace athanor::live
