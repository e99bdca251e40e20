// Phoenix.LiveViewTest for Athanor: mount a view, send it events and assert on its HTML, from a
// test's own process, with no server, socket or browser.
//
//   spawn([&](process&) -> proc {
//     live::test_view v = co_await live::test_view::live(lv, "/counter");   // live(conn, "/counter")
//     EXPECT_NE(v.dead_html().find(">0</span>"), std::string::npos);
//     std::string html = co_await v.click("inc");                             // render_click
//     EXPECT_NE(html.find(">1</span>"), std::string::npos);
//   });
//
// What runs is what a browser gets: the page's dead render with its tokens, a join on "lv:<id>"
// through the same socket session and channel (web::test_socket), and every reply and pushed
// diff merged in arrival order into the tree a client keeps (merge_diff), whose HTML html()
// returns. Thread-safety: a test_view belongs to the process that made it; use it only there.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "athanor/live/view.h"
#include "athanor/runtime/proc.h"
#include "athanor/term/term.h"

namespace athanor::web {
class test_socket;
}

namespace athanor::live {

class test_view {
 public:
  using duration = std::chrono::milliseconds;
  // How long a call waits for the view's answer before failing (std::runtime_error).
  static constexpr duration default_timeout{5000};

  // Serves `path` ("/counter?start=3": its query reaches mount) of `router` as GET would, then
  // joins it as the page's LiveSocket would. Call from a process. Throws std::runtime_error if no
  // view is at the path, the view redirects while rendering, or the join fails or times out
  // (what() holds the reply).
  static task<test_view> live(const live_router& router, std::string path);

  test_view(test_view&&) noexcept;
  test_view& operator=(test_view&&) noexcept;
  ~test_view();

  // The page as GET served it (layout included): the dead render.
  const std::string& dead_html() const noexcept { return dead_html_; }
  // The view's HTML as the client has it now (the container's content).
  std::string html() const;
  // The page title the view set last, if any.
  const std::optional<std::string>& title() const noexcept { return title_; }
  // Events the view pushed (push_event), oldest first; taken by this call.
  std::vector<std::pair<std::string, term>> take_events() { return std::exchange(events_, {}); }

  // Phoenix's render_click: a phx-click of `event` with `value` (its phx-value-* map). Returns
  // html() once the reply is merged. Throws std::runtime_error if no reply comes.
  task<std::string> click(std::string event, term value = map({}));
  // render_change: a phx-change of `event` with the form's fields URL-encoded (as the client
  // sends them) and the field that changed (its name, "user[email]"; "" for none).
  task<std::string> change(std::string event, std::string form, std::string target = {});
  // render_submit: a phx-submit of `event` with the form's fields URL-encoded.
  task<std::string> submit(std::string event, std::string form);
  // render_patch: what a patch link (or the back button) to `to` sends ("/path?query" of this
  // view); the view's handle_params runs. Returns html().
  task<std::string> patch(std::string to);
  // The page's URL as the client has it (its path and query; patches change it).
  const std::string& url() const noexcept { return url_; }
  // Where the view sent the browser with push_navigate or redirect ("" if nowhere), taken by
  // this call (Phoenix's assert_redirect).
  std::string take_redirect() { return std::exchange(redirect_, {}); }

  // Merges what the view pushed meanwhile (diffs from handle_info), waiting up to `wait` for a
  // first one; returns html().
  task<std::string> render(duration wait = duration(0));

 private:
  test_view() = default;
  task<std::string> send_event(term payload);
  task<std::string> send_event_as(std::string event, term payload);
  void apply(const term& diff);

  std::unique_ptr<web::test_socket> socket_;
  std::string topic_;
  std::string dead_html_;
  term tree_ = map({});
  std::optional<std::string> title_;
  std::vector<std::pair<std::string, term>> events_;
  std::string url_, redirect_;
};

}  // namespace athanor::live
