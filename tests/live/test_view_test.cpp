// test_view (athanor/live/test_view.h), Phoenix.LiveViewTest's equivalent: views mounted, clicked,
// changed and submitted from a test's process, their HTML as the client would have it. Each test
// names the LiveViewTest function it mirrors.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "athanor/athanor.h"
#include "athanor/live/test_view.h"
#include "athanor/term/json.h"

namespace athanor::live {
namespace {

using namespace std::chrono_literals;

const std::string kSecret(40, 's');

struct tick {};

// A to-do list: "add" appends, "top" moves the last item first (a keyed move), "later" comes back
// through handle_info, "ping" pushes an event, "save"/"check" take a form.
struct todos : view<todos> {
  std::vector<std::string> items;
  std::string note;
  int ticks = 0;
  void mount(const term& params, view_socket& s) {
    if (const term* first = params.find(term("first"))) items.emplace_back(first->as_binary());
    s.page_title("Todos");
  }
  void handle_event(std::string_view event, const term& value, view_socket& s) {
    if (event == "add") items.push_back(std::string(value.find(term("text"))->as_binary()));
    if (event == "top" && !items.empty()) std::rotate(items.rbegin(), items.rbegin() + 1, items.rend());
    if (event == "later") send(s.self(), tick{});
    if (event == "ping") s.push_event("pong", map({{term("n"), term(1)}}));
    if (event == "check" || event == "save") note = event == "save" ? "saved " + json::encode(value) : json::encode(value);
    s.page_title("Todos (" + std::to_string(items.size()) + ")");
  }
  void handle_info(message& m, view_socket&) {
    if (m.is<tick>()) ++ticks;
  }
  rendered render() const {
    static const html_template page("<ul>{}</ul><p id=\"note\">{}</p><p id=\"ticks\">{}</p>");
    static const html_template item("<li id=\"{}\">{}</li>");
    comprehension list(item);
    for (const std::string& i : items) list.add(item("item-" + i, i), i);
    return page(std::move(list), note, ticks);
  }
};

template <class F>
void in_process(F body) {
  runtime rt;
  spawn([body = std::move(body)](process& self) mutable -> proc { return body(self); });
  rt.wait();
}

TEST(TestView, LiveMountsTheDeadRenderThenTheConnectedView) {
  live_router lv({.secret_key_base = kSecret});
  lv.live<todos>("/todos");
  in_process([&](process&) -> proc {
    test_view v = co_await test_view::live(lv, "/todos?first=milk");
    EXPECT_NE(v.dead_html().find("<li id=\"item-milk\">milk</li>"), std::string::npos) << v.dead_html();
    EXPECT_NE(v.dead_html().find("<title>Todos</title>"), std::string::npos);
    EXPECT_EQ(v.html(), "<ul><li id=\"item-milk\">milk</li></ul><p id=\"note\"></p><p id=\"ticks\">0</p>");
    EXPECT_EQ(v.title(), "Todos");
  });
}

TEST(TestView, RenderClickMergesTheDiffsIncludingKeyedMoves) {
  live_router lv({.secret_key_base = kSecret});
  lv.live<todos>("/todos");
  in_process([&](process&) -> proc {
    test_view v = co_await test_view::live(lv, "/todos");
    (void)co_await v.click("add", map({{term("text"), term("a")}}));
    (void)co_await v.click("add", map({{term("text"), term("<b>")}}));  // escaped
    std::string html = co_await v.click("top");
    EXPECT_EQ(html, "<ul><li id=\"item-&lt;b&gt;\">&lt;b&gt;</li><li id=\"item-a\">a</li></ul><p id=\"note\"></p><p id=\"ticks\">0</p>");
    EXPECT_EQ(v.title(), "Todos (2)");
  });
}

TEST(TestView, RenderChangeAndRenderSubmitSendTheFormAsTheClientDoes) {
  live_router lv({.secret_key_base = kSecret});
  lv.live<todos>("/todos");
  in_process([&](process&) -> proc {
    test_view v = co_await test_view::live(lv, "/todos");
    std::string html = co_await v.change("check", "user%5Bemail%5D=a%40b&_unused_q=", "user[email]");
    EXPECT_NE(html.find("&quot;_target&quot;:[&quot;user&quot;,&quot;email&quot;]"), std::string::npos) << html;
    EXPECT_NE(html.find("&quot;user&quot;:{&quot;email&quot;:&quot;a@b&quot;}"), std::string::npos) << html;
    html = co_await v.submit("save", "q=x");
    EXPECT_NE(html.find("saved {&quot;q&quot;:&quot;x&quot;}"), std::string::npos) << html;
  });
}

TEST(TestView, RenderPicksUpDiffsFromHandleInfoAndEventsAreCollected) {
  live_router lv({.secret_key_base = kSecret});
  lv.live<todos>("/todos");
  in_process([&](process&) -> proc {
    test_view v = co_await test_view::live(lv, "/todos");
    (void)co_await v.click("later");
    std::string html = v.html();
    for (int i = 0; i < 50 && html.find("<p id=\"ticks\">1</p>") == std::string::npos; ++i) html = co_await v.render(100ms);
    EXPECT_NE(html.find("<p id=\"ticks\">1</p>"), std::string::npos) << html;
    (void)co_await v.click("ping");
    const auto events = v.take_events();
    EXPECT_EQ(events.size(), 1u);
    if (!events.empty()) {
      EXPECT_EQ(events[0].first, "pong");
      EXPECT_EQ(events[0].second, map({{term("n"), term(1)}}));
    }
  });
}

TEST(TestView, LiveOfAPathWithoutAViewThrows) {
  live_router lv({.secret_key_base = kSecret});
  lv.live<todos>("/todos");
  in_process([&](process&) -> proc {
    bool threw = false;
    try {
      (void)co_await test_view::live(lv, "/nothing");
    } catch (const std::runtime_error&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
  });
}

// Navigation: ?page=N is read in handle_params; "next" patches to the next page, "go" navigates
// to /todos, "away" redirects off the site; ?jump patches while mounting.
struct pages : view<pages> {
  int page = 0, mounts = 0;
  void mount(const term& params, view_socket& s) {
    ++mounts;
    if (params.find(term("jump"))) s.push_patch("/pages?page=7", true);
  }
  void handle_params(const term& params, std::string_view, view_socket&) {
    const term* p = params.find(term("page"));
    page = p ? std::stoi(std::string(p->as_binary())) : 1;
  }
  void handle_event(std::string_view event, const term&, view_socket& s) {
    if (event == "next") s.push_patch("/pages?page=" + std::to_string(page + 1));
    if (event == "go") s.push_navigate("/todos");
    if (event == "away") s.redirect("https://example.com/");
  }
  rendered render() const {
    static const html_template t("<p>page {} of mount {}</p>");
    return t(page, mounts);
  }
};

TEST(TestView, PushPatchRunsHandleParamsWithoutANewMountAndChangesTheUrl) {
  live_router lv({.secret_key_base = kSecret});
  lv.live<pages>("/pages").live<todos>("/todos");
  in_process([&](process&) -> proc {
    test_view v = co_await test_view::live(lv, "/pages?page=2");
    EXPECT_EQ(v.html(), "<p>page 2 of mount 1</p>");
    EXPECT_EQ(co_await v.click("next"), "<p>page 3 of mount 1</p>");
    EXPECT_EQ(v.url(), "/pages?page=3");
    EXPECT_EQ(co_await v.patch("/pages?page=9"), "<p>page 9 of mount 1</p>");  // a patch link, the back button
    test_view jumped = co_await test_view::live(lv, "/pages?jump=1");            // a patch while mounting
    EXPECT_EQ(jumped.url(), "/pages?page=7");
    EXPECT_EQ(jumped.html(), "<p>page 7 of mount 1</p>");
  });
}

TEST(TestView, PushNavigateAndRedirectAreTheClientsToFollow) {
  live_router lv({.secret_key_base = kSecret});
  lv.live<pages>("/pages").live<todos>("/todos");
  in_process([&](process&) -> proc {
    test_view v = co_await test_view::live(lv, "/pages");
    (void)co_await v.click("go");
    EXPECT_EQ(v.take_redirect(), "/todos");  // assert_redirect
    (void)co_await v.click("away");
    EXPECT_EQ(v.take_redirect(), "https://example.com/");
    EXPECT_EQ(v.take_redirect(), "");
  });
}

}  // namespace
}  // namespace athanor::live
