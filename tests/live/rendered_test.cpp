// Rendered trees and diffs (athanor/live/rendered.h): the wire form rule by rule (each named after
// the protocol notes' §C.3 rule it checks), and a conformance run in which the official
// phoenix_live_view client (tests/live/js/rendered_check.js) merges hundreds of random render
// sequences and must build, after every diff, exactly the HTML Athanor renders.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <optional>
#include <random>
#include <string>

#include "live_js.h"
#include "athanor/live/rendered.h"
#include "athanor/term/json.h"

namespace athanor::live {
namespace {

using testing::ensure_node_modules;
using testing::js_dir;

nlohmann::json wire(const term& t) { return nlohmann::json::parse(json::encode(t)); }

TEST(HtmlTemplate, SplitsAtHolesAndKeepsDoubledBracesLiteral) {
  const html_template t("<p class=\"{}\">{{x}} {}</p>");
  EXPECT_EQ(t.holes(), 2u);
  EXPECT_EQ(*t.statics(), (std::vector<std::string>{"<p class=\"", "\">{x} ", "</p>"}));
  EXPECT_EQ(html_template("no holes").holes(), 0u);
  EXPECT_THROW(html_template("<p>{x}</p>"), template_error);
  EXPECT_THROW(html_template("<p>}</p>"), template_error);
  EXPECT_THROW(html_template("<p>{"), template_error);
  EXPECT_THROW(t("only one"), std::invalid_argument);
}

TEST(Rendered, TextIsEscapedAndSafeHtmlIsNot) {
  EXPECT_EQ(escape_html("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const html_template t("<p>{}|{}|{}|{}</p>");
  EXPECT_EQ(to_html(t("<b>", safe_html{"<b>"}, 42, 2.5)), "<p>&lt;b&gt;|<b>|42|2.5</p>");
}

TEST(Rendered, HtmlConcatenatesStaticsAndDynamicsNestedAndRepeated) {
  static const html_template item("<li>{}</li>"), page("<h1>{}</h1><ul>{}</ul>");
  comprehension items(item);
  items.add(item("a")).add(item("b"));
  EXPECT_EQ(to_html(page(page.statics()->size() ? "T" : "", std::move(items))), "<h1>T</h1><ul><li>a</li><li>b</li></ul>");
  const html_template other("<i>{}</i>");
  comprehension mixed(item);
  EXPECT_THROW(mixed.add(other("x")), std::invalid_argument);
}

TEST(RenderedDiff, SpecRule_AFirstRenderCarriesEveryStaticAndEveryDynamic) {
  static const html_template t("<p id=\"count\">{}</p><span>{}</span>");
  EXPECT_EQ(wire(diff(nullptr, t(0, "x"))),
            nlohmann::json::parse(R"({"s":["<p id=\"count\">","</p><span>","</span>"],"0":"0","1":"x"})"));
}

TEST(RenderedDiff, SpecRule_NumbersAreSentAsStringsNeverAsComponentIds) {
  static const html_template t("{}");
  EXPECT_TRUE(wire(diff(nullptr, t(5)))["0"].is_string());
}

TEST(RenderedDiff, SpecRule_OnlyChangedDynamicsAreSentAndNothingForNoChange) {
  static const html_template t("<p>{}</p><p>{}</p>");
  const rendered a = t(1, "same"), b = t(2, "same");
  EXPECT_EQ(wire(diff(&a, b)), nlohmann::json::parse(R"({"0":"2"})"));
  EXPECT_EQ(wire(diff(&b, b)), nlohmann::json::object());
}

TEST(RenderedDiff, SpecRule_ANestedNodeOfTheSameTemplateIsMergedAndAnotherTemplateReplacesIt) {
  static const html_template page("<main>{}</main>"), bold("<b>{}</b>"), italic("<i>{}</i>");
  const rendered a = page(bold("x")), b = page(bold("y")), c = page(italic("y"));
  EXPECT_EQ(wire(diff(&a, b)), nlohmann::json::parse(R"({"0":{"0":"y"}})"));
  EXPECT_EQ(wire(diff(&b, c)), nlohmann::json::parse(R"({"0":{"s":["<i>","</i>"],"0":"y"}})"));
  EXPECT_EQ(wire(diff(&c, c)), nlohmann::json::object());
}

comprehension list_of(const html_template& item, std::initializer_list<std::pair<const char*, const char*>> entries) {
  comprehension c(item);
  for (auto [key, text] : entries) c.add(item(text), key);
  return c;
}

TEST(RenderedDiff, SpecRule_AComprehensionAlwaysCarriesKc) {
  static const html_template item("<li>{}</li>"), page("<ul>{}</ul>");
  const rendered empty = page(comprehension(item));
  EXPECT_EQ(wire(diff(nullptr, empty)), nlohmann::json::parse(R"({"s":["<ul>","</ul>"],"0":{"s":["<li>","</li>"],"k":{"kc":0}}})"));
  const rendered two = page(list_of(item, {{"a", "A"}, {"b", "B"}}));
  EXPECT_EQ(wire(diff(&empty, two)), nlohmann::json::parse(R"({"0":{"k":{"0":{"0":"A"},"1":{"0":"B"},"kc":2}}})"));
  const rendered one = page(list_of(item, {{"a", "A"}}));
  EXPECT_EQ(wire(diff(&two, one)), nlohmann::json::parse(R"({"0":{"k":{"kc":1}}})"));  // truncated
  const rendered changed = page(list_of(item, {{"a", "A!"}}));
  EXPECT_EQ(wire(diff(&one, changed)), nlohmann::json::parse(R"({"0":{"k":{"0":{"0":"A!"},"kc":1}}})"));
}

TEST(RenderedDiff, SpecRule_MovedKeyedEntriesAreSentAsOldIndexesWithKm) {
  static const html_template item("<li>{}</li>"), page("<ul>{}</ul>");
  const rendered ab = page(list_of(item, {{"a", "a"}, {"b", "b"}}));
  const rendered zab = page(list_of(item, {{"z", "z"}, {"a", "a"}, {"b", "b"}}));
  EXPECT_EQ(wire(diff(&ab, zab)), nlohmann::json::parse(R"({"0":{"k":{"0":{"0":"z"},"1":0,"2":1,"kc":3,"km":true}}})"));
  const rendered swapped = page(list_of(item, {{"b", "B!"}, {"a", "a"}}));
  EXPECT_EQ(wire(diff(&ab, swapped)), nlohmann::json::parse(R"({"0":{"k":{"0":[1,{"0":"B!"}],"1":0,"kc":2,"km":true}}})"));
}

TEST(RenderedDiff, EntriesWithoutDistinctKeysAreMatchedByPosition) {
  static const html_template item("<li>{}</li>"), page("<ul>{}</ul>");
  const rendered ab = page(list_of(item, {{"k", "a"}, {"k", "b"}}));  // a duplicate key: by position
  const rendered ba = page(list_of(item, {{"k", "b"}, {"k", "a"}}));
  EXPECT_EQ(wire(diff(&ab, ba)), nlohmann::json::parse(R"({"0":{"k":{"0":{"0":"b"},"1":{"0":"a"},"kc":2}}})"));
}

TEST(MergeDiff, RefusesWhatTheClientCouldNotMerge) {
  term tree = json::decode(R"({"s":["<ul>","</ul>"],"0":{"s":["<li>","</li>"],"k":{"0":{"0":"a"},"kc":1}}})");
  EXPECT_EQ(tree_to_html(tree), "<ul><li>a</li></ul>");
  EXPECT_THROW(merge_diff(tree, json::decode(R"({"0":{"k":{"0":0,"1":0,"kc":2}}})")), std::invalid_argument);  // no km
  EXPECT_THROW(merge_diff(tree, json::decode(R"({"0":{"k":{"0":5,"kc":1,"km":true}}})")), std::invalid_argument);
  EXPECT_THROW(merge_diff(tree, json::decode(R"({"0":{"k":{"0":{"0":"b"}}}})")), std::invalid_argument);  // no kc
  merge_diff(tree, json::decode(R"({"0":{"k":{"0":{"0":"z"},"1":0,"kc":2,"km":true}}})"));
  EXPECT_EQ(tree_to_html(tree), "<ul><li>z</li><li>a</li></ul>");
}

// ---- the official client merges random render sequences -------------------------------------------

struct random_pages {
  std::mt19937 rng{20261207};  // fixed: the same cases every run
  const html_template page{"<div class=\"{}\">{}<ul>{}</ul>{}</div>"};
  const html_template item{"<li id=\"{}\">{}{}</li>"};
  const html_template bold{"<b>{}</b>"};
  const html_template pair{"<i>{}</i><em>{}</em>"};

  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  std::string text() {
    static const std::array<const char*, 8> words{"a", "b", "<x>", "&", "\"q\"", "it's", "", "{}"};
    std::string s = words[std::size_t(below(int(words.size())))];
    if (below(3) == 0) s += std::to_string(below(3));
    return s;
  }
  dynamic leaf() {
    switch (below(4)) {
      case 0: return bold(text());
      case 1: return pair(text(), below(2) ? dynamic(bold(text())) : dynamic(text()));
      case 2: return safe_html{"<br>"};
      default: return text();
    }
  }
  comprehension items() {
    comprehension c(item);
    std::vector<std::string> keys{"k1", "k2", "k3", "k4", "k5", "k6"};
    std::shuffle(keys.begin(), keys.end(), rng);
    const int n = below(6);
    const bool keyed = below(4) != 0;
    for (int i = 0; i < n; ++i) {
      const std::string key = keyed ? keys[std::size_t(i)] : std::string();
      c.add(item(key, below(3) ? std::string("same") : text(), leaf()), key);
    }
    return c;
  }
  rendered render() {
    dynamic middle = below(3) == 0 ? dynamic(text()) : dynamic(items());
    return page(below(2) ? "x" : "y", leaf(), std::move(middle), leaf());
  }
};



TEST(RenderedDiff, TheOfficialClientBuildsTheSameHtmlFromEveryDiff) {
  if (std::system("node --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
  if (!ensure_node_modules()) GTEST_SKIP() << "npm ci failed in tests/live/js (offline without node_modules?)";
  random_pages gen;
  nlohmann::json cases = nlohmann::json::array();
  for (int c = 0; c < 400; ++c) {
    nlohmann::json steps = nlohmann::json::array();
    std::optional<rendered> before;
    term client = map({});  // merge_diff, checked on the same cases
    for (int s = 0; s < 6; ++s) {
      rendered now = gen.render();
      const term d = diff(before ? &*before : nullptr, now);
      merge_diff(client, d);
      EXPECT_EQ(tree_to_html(client), to_html(now)) << "case " << c << " step " << s << ": " << json::encode(d);
      steps.push_back({{"wire", wire(d)}, {"html", to_html(now)}});
      before = std::move(now);
    }
    cases.push_back({{"steps", steps}});
  }
  const std::string file = ::testing::TempDir() + "/rendered_cases_" + std::to_string(::getpid()) + ".json";
  std::ofstream(file) << cases.dump();
  const std::string cmd = "node '" + js_dir() + "/rendered_check.js' '" + file + "' 2>&1";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    EXPECT_EQ(::pclose(p), 0) << out.substr(0, 4000);
  }
  std::filesystem::remove(file);
  EXPECT_EQ(out, "ok 2400\n") << out.substr(0, 4000);
}

}  // namespace
}  // namespace athanor::live
