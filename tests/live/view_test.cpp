// LiveViews (athanor/live/view.h) and their tokens (token.h): the dead render, then the join and
// events as the official `phoenix` client sends them (tests/web/js/phoenix_client.js, frames as
// the protocol notes' §C/§D transcript shows phoenix_live_view sending them), and the checks a
// join must pass (Phoenix's "stale" for a bad session or CSRF token).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <stdlib.h>

#include <regex>
#include <sstream>
#include <stdexcept>

#include "../web/web_test_util.h"
#include "athanor/live/token.h"
#include "athanor/live/view.h"
#include "athanor/term/json.h"

namespace athanor::live {
namespace {

using web::testing::command_result;
using web::testing::sh;

// ---- tokens -----------------------------------------------------------------------------------------

const std::string kSecret(40, 'k');

TEST(LiveToken, VerifiesWhatItSignedAndRefusesTamperingOtherSaltsAndAge) {
  const std::string t = sign_token(kSecret, "s1", "payload");
  EXPECT_EQ(verify_token(kSecret, "s1", t, std::chrono::hours(1)), "payload");
  EXPECT_EQ(verify_token(kSecret, "s2", t, std::chrono::hours(1)), std::nullopt);               // another purpose
  EXPECT_EQ(verify_token(std::string(40, 'x'), "s1", t, std::chrono::hours(1)), std::nullopt);  // another site
  EXPECT_EQ(verify_token(kSecret, "s1", t, std::chrono::seconds(-120)), std::nullopt);          // expired
  std::string tampered = t;
  tampered[2] = tampered[2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(verify_token(kSecret, "s1", tampered, std::chrono::hours(1)), std::nullopt);
  EXPECT_EQ(verify_token(kSecret, "s1", "no-dot", std::chrono::hours(1)), std::nullopt);
  EXPECT_THROW(sign_token("short", "s1", "x"), token_error);
  EXPECT_EQ(tag(kSecret, "csrf", "n1"), tag(kSecret, "csrf", "n1"));
  EXPECT_NE(tag(kSecret, "csrf", "n1"), tag(kSecret, "csrf", "n2"));
}

TEST(LiveToken, Base64UrlRoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  for (std::size_t n = 0; n < 5; ++n) EXPECT_EQ(web::base64_decode(base64url_encode(all.substr(n))), all.substr(n));
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(web::base64_decode("a"), std::nullopt);
  EXPECT_EQ(web::base64_decode("a*bc"), std::nullopt);
}

TEST(LiveToken, TheSecretKeyBaseComesFromTheEnvironmentElseAFileMadeOnce) {
  const std::string file = ::testing::TempDir() + "/secret_" + std::to_string(::getpid());
  std::filesystem::remove(file);
  ::unsetenv("ATHANOR_SECRET_KEY_BASE");
  const std::string made = secret_key_base(file);
  EXPECT_GE(made.size(), 32u);
  EXPECT_EQ(secret_key_base(file), made);  // kept: a restarted node signs and verifies the same
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ::setenv("ATHANOR_SECRET_KEY_BASE", kSecret.c_str(), 1);
  EXPECT_EQ(secret_key_base(file), kSecret);
  ::setenv("ATHANOR_SECRET_KEY_BASE", "too short", 1);
  EXPECT_THROW(secret_key_base(file), token_error);
  ::unsetenv("ATHANOR_SECRET_KEY_BASE");
  std::filesystem::remove(file);
}

// ---- forms ------------------------------------------------------------------------------------------

TEST(LiveForm, DecodesAsPlugDoesWithNestedKeysListsAndUnusedMarkers) {
  EXPECT_EQ(decode_form("user%5Bname%5D=jo&_unused_q=&q=a+b"),
            map({{term("user"), map({{term("name"), term("jo")}})}, {term("_unused_q"), term("")}, {term("q"), term("a b")}}));
  EXPECT_EQ(decode_form("tags[]=a&tags[]=b&x=1&x=2"), map({{term("tags"), list({term("a"), term("b")})}, {term("x"), term("2")}}));
  EXPECT_EQ(decode_form("a[b][c]=1&a[b][d]=2"),
            map({{term("a"), map({{term("b"), map({{term("c"), term("1")}, {term("d"), term("2")}})}})}}));
  EXPECT_EQ(decode_form(""), map({}));
}

// ---- a view, served and joined ------------------------------------------------------------------

struct bump {};
struct counter : view<counter> {
  int count = 0;
  void mount(const term& params, view_socket& s) {
    if (const term* start = params.find(term("start"))) count = std::stoi(std::string(start->as_binary()));
    s.page_title("Count: " + std::to_string(count));
  }
  void handle_event(std::string_view event, const term& value, view_socket& s) {
    if (event == "inc") ++count;
    if (event == "dec") --count;
    if (event == "later") send(s.self(), bump{});  // comes back through handle_info
    if (event == "crash") throw std::runtime_error("crash requested");
    if (event == "say") s.push_event("said", value);
    if (event == "save") last_form = json::encode(value);
    s.page_title("Count: " + std::to_string(count));
  }
  void handle_info(message& m, view_socket&) {
    if (m.is<bump>()) count += 10;
  }
  rendered render() const {
    static const html_template t(R"(<span id="count">{}</span><p>{}</p>)");
    return t(count, last_form);
  }
  std::string last_form;
};

class LiveViewTest : public web::testing::WebTest {
 protected:
  void SetUp() override {
    WebTest::SetUp();
    if (!web::testing::have_tool("node") || !web::testing::have_tool("curl")) GTEST_SKIP() << "node and curl are needed";
    if (!web::testing::ensure_node_modules()) GTEST_SKIP() << "npm ci failed in tests/web/js";
    lv_ = std::make_unique<live_router>(live_config{.secret_key_base = kSecret});
    lv_->live<counter>("/counter");
    web::router r;
    lv_->mount(r);
    start(std::move(r));
  }
  void TearDown() override {
    WebTest::TearDown();
    lv_.reset();
  }
  struct page {
    std::string html, id, session, csrf;
  };
  page get(const std::string& path) {
    page p;
    p.html = sh("curl -s '" + url(path) + "'").out;
    std::smatch m;
    if (std::regex_search(p.html, m, std::regex("<div id=\"(phx-[^\"]+)\" data-phx-main data-phx-session=\"([^\"]+)\""))) {
      p.id = m[1];
      p.session = m[2];
    }
    if (std::regex_search(p.html, m, std::regex("<meta name=\"csrf-token\" content=\"([^\"]+)\""))) p.csrf = m[1];
    return p;
  }
  // The join payload phoenix_live_view sends (the protocol notes, §C.2).
  static std::string join_payload(const page& p, const std::string& page_url, const std::string& csrf) {
    return nlohmann::json({{"url", page_url},
                           {"params", {{"_csrf_token", csrf}, {"_mounts", 0}, {"_mount_attempts", 0}}},
                           {"session", p.session},
                           {"static", nullptr},
                           {"sticky", false}})
        .dump();
  }
  std::vector<nlohmann::json> client(const std::string& args) {
    command_result r = sh("node '" + web::testing::js_dir() + "/phoenix_client.js' " + args + " 2>&1");
    output_ = r.out;
    std::vector<nlohmann::json> lines;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line, nullptr, false));
    return lines;
  }
  static nlohmann::json first(const std::vector<nlohmann::json>& lines, const std::string& event) {
    for (const auto& l : lines)
      if (l.value("event", "") == event) return l;
    return nullptr;
  }
  std::string socket_url() const { return "ws://127.0.0.1:" + std::to_string(port()) + "/live"; }
  static std::string quoted(const std::string& s) { return "'" + s + "'"; }

  std::unique_ptr<live_router> lv_;
  std::string output_;
};

TEST_F(LiveViewTest, TheDeadRenderIsThePageWithItsContainerTokensAndTitle) {
  const page p = get("/counter?start=5");
  EXPECT_NE(p.html.find("<title>Count: 5</title>"), std::string::npos) << p.html;
  EXPECT_NE(p.html.find("<span id=\"count\">5</span><p></p></div>"), std::string::npos) << p.html;
  EXPECT_NE(p.html.find("src=\"/assets/phoenix_live_view.js\""), std::string::npos) << p.html;
  EXPECT_NE(p.html.find("data-phx-static=\"\""), std::string::npos) << p.html;
  EXPECT_FALSE(p.id.empty());
  EXPECT_FALSE(p.csrf.empty());
  EXPECT_NE(get("/counter").id, p.id);  // every page its own container and session
  const std::string js = sh("curl -s '" + url("/assets/athanor_live.js") + "'").out;
  EXPECT_NE(js.find("new LiveView.LiveSocket(\"/live\""), std::string::npos) << js;
}

TEST_F(LiveViewTest, SpecD2_JoinRepliesTheRenderedTreeAndAClickRepliesItsDiff) {
  const page p = get("/counter");
  const auto lines = client("push " + socket_url() + " lv:" + p.id + " " + quoted(join_payload(p, url("/counter?start=2"), p.csrf)) +
                            " event '{\"type\":\"click\",\"event\":\"inc\",\"value\":{\"value\":\"\"}}'");
  const auto joined = first(lines, "join_ok");
  ASSERT_FALSE(joined.is_null()) << output_;
  EXPECT_EQ(joined["reply"]["liveview_version"], "1.2.12") << output_;
  EXPECT_EQ(joined["reply"]["rendered"], nlohmann::json::parse(R"({"s":["<span id=\"count\">","</span><p>","</p>"],"0":"2","1":"","t":"Count: 2"})"))
      << output_;  // mounted with the URL's params, connected
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json::parse(R"({"diff":{"0":"3","t":"Count: 3"}})")) << output_;
}

TEST_F(LiveViewTest, FormEventsAreDecodedWithTheirTargetAndEventsReachThePage) {
  const page p = get("/counter");
  auto lines = client("push " + socket_url() + " lv:" + p.id + " " + quoted(join_payload(p, url("/counter"), p.csrf)) +
                      " event '{\"type\":\"form\",\"event\":\"save\",\"value\":\"user%5Bname%5D=jo&_unused_q=\","
                      "\"meta\":{\"_target\":\"user[name]\"},\"uploads\":{}}'");
  const auto diff = first(lines, "reply")["response"]["diff"];
  ASSERT_TRUE(diff.contains("1")) << output_;
  // The text is HTML-escaped JSON of what handle_event got.
  EXPECT_NE(std::string(diff["1"]).find("&quot;_target&quot;:[&quot;user&quot;,&quot;name&quot;]"), std::string::npos) << output_;
  EXPECT_NE(std::string(diff["1"]).find("&quot;user&quot;:{&quot;name&quot;:&quot;jo&quot;}"), std::string::npos) << output_;
  lines = client("push " + socket_url() + " lv:" + p.id + " " + quoted(join_payload(p, url("/counter"), p.csrf)) +
                 " event '{\"type\":\"click\",\"event\":\"say\",\"value\":{\"x\":\"1\"}}'");
  EXPECT_EQ(first(lines, "reply")["response"]["diff"]["e"], nlohmann::json::parse(R"([["said",{"x":"1"}]])")) << output_;
}

TEST_F(LiveViewTest, MessagesToTheViewsProcessPushADiff) {
  const page p = get("/counter");
  const auto lines = client("push " + socket_url() + " lv:" + p.id + " " + quoted(join_payload(p, url("/counter"), p.csrf)) +
                            " event '{\"type\":\"click\",\"event\":\"later\",\"value\":{}}' --expect 1:diff");
  const auto push = first(lines, "push");
  ASSERT_FALSE(push.is_null()) << output_;
  EXPECT_EQ(push["payload"], nlohmann::json::parse(R"({"0":"10"})")) << output_;
}

TEST_F(LiveViewTest, ACrashedViewIsAPhxErrorAndTheClientsRejoinMountsItAfresh) {
  const page p = get("/counter");
  const auto lines = client("push " + socket_url() + " lv:" + p.id + " " + quoted(join_payload(p, url("/counter"), p.csrf)) +
                            " event '{\"type\":\"click\",\"event\":\"crash\",\"value\":{}}' --no-reply --expect-joins 2");
  EXPECT_FALSE(first(lines, "channel_error").is_null()) << output_;
  std::size_t joins = 0;
  for (const auto& l : lines) joins += l.value("event", "") == "join_ok";
  EXPECT_EQ(joins, 2u) << output_;
}

TEST_F(LiveViewTest, PhoenixRule_ABadCsrfTokenOrSessionIsAStaleJoinNotARefusedSocket) {
  const page p = get("/counter");
  auto lines = client("join " + socket_url() + " lv:" + p.id + " " + quoted(join_payload(p, url("/counter"), "forged")));
  EXPECT_EQ(first(lines, "join_error")["reply"], nlohmann::json({{"reason", "stale"}})) << output_;
  page other = get("/counter");  // another page's valid CSRF token does not fit this session
  lines = client("join " + socket_url() + " lv:" + p.id + " " + quoted(join_payload(p, url("/counter"), other.csrf)));
  EXPECT_EQ(first(lines, "join_error")["reply"], nlohmann::json({{"reason", "stale"}})) << output_;
  page tampered = p;
  tampered.session[tampered.session.size() - 3] ^= 1;
  lines = client("join " + socket_url() + " lv:" + p.id + " " + quoted(join_payload(tampered, url("/counter"), p.csrf)));
  EXPECT_EQ(first(lines, "join_error")["reply"], nlohmann::json({{"reason", "stale"}})) << output_;
}

// The client's live navigation (§C.7): it rejoins the same topic with "redirect"; the session
// vouches for any view of its router, and a path outside it is "unauthorized".
TEST_F(LiveViewTest, SpecC7_ALiveRedirectJoinMountsTheViewAtItsUrlWithinTheRouter) {
  const page p = get("/counter");
  auto payload = nlohmann::json::parse(join_payload(p, url("/counter"), p.csrf));
  payload.erase("url");
  payload["redirect"] = url("/counter?start=4");
  auto lines = client("join " + socket_url() + " lv:" + p.id + " " + quoted(payload.dump()));
  EXPECT_EQ(first(lines, "join_ok")["reply"]["rendered"]["0"], "4") << output_;
  payload["redirect"] = url("/elsewhere");
  lines = client("join " + socket_url() + " lv:" + p.id + " " + quoted(payload.dump()));
  EXPECT_EQ(first(lines, "join_error")["reply"], nlohmann::json({{"reason", "unauthorized"}})) << output_;
}

}  // namespace
}  // namespace athanor::live
