// athanor::live rendered trees: what a LiveView renders, as HTML for the first (dead) page and as
// the tree the official phoenix_live_view client merges and patches (the protocol notes, §C.3).
//
//   static const live::html_template counter("<p id=\"count\">{}</p><button phx-click=\"inc\">+</button>");
//   live::rendered before = counter(0), after = counter(1);
//   live::to_html(after);            // <p id="count">1</p><button phx-click="inc">+</button>
//   live::diff(nullptr, before);     // {"s": ["<p id=\"count\">", "</p><button ...>+</button>"], "0": "0"}
//   live::diff(&before, after);      // {"0": "1"}: the statics went once; only what changed goes again
//
// Model (HEEx's): a template is split once, where it is made, into statics (the literal HTML
// between its `{}` holes) and holes; a render fills the holes with dynamics: text (escaped),
// safe_html (verbatim), a nested render of another template, or a comprehension (one template
// repeated over a list, optionally keyed). A template's statics are its fingerprint: the client
// keeps them after the first render, and a render of the same template sends only the dynamics
// that differ from what the client has (diff()). Values are compared after rendering, so an
// unchanged part is never re-sent however it was computed.
//
// Thread-safety: html_template is immutable once made and may be shared by every thread (make it
// a function-local or namespace-scope static: parsing happens once). rendered, comprehension and
// dynamic are plain values; the free functions are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "athanor/term/term.h"

namespace athanor::live {

// Markup inserted without escaping (Phoenix's {:safe, iodata}): for HTML the program made or
// trusts. Everything else is escaped.
struct safe_html {
  std::string html;
};

// `text` with & < > " ' replaced by entities: safe in element content and quoted attribute values.
std::string escape_html(std::string_view text);

// A template that cannot be parsed (an unmatched `{` or `}`); what() says where.
class template_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class dynamic;
class html_template;

// The statics of one template: shared by every render of it, and its identity (fingerprint).
using statics_ptr = std::shared_ptr<const std::vector<std::string>>;

// One render of a template: its statics and a dynamic per hole.
class rendered {
 public:
  rendered(statics_ptr statics, std::vector<dynamic> dynamics);
  const statics_ptr& statics() const noexcept { return statics_; }
  const std::vector<dynamic>& dynamics() const noexcept { return dynamics_; }

 private:
  statics_ptr statics_;
  std::vector<dynamic> dynamics_;
};

// One template repeated over a list (HEEx's `:for`): the template's statics once, and each
// entry's dynamics. Entries may carry keys (HEEx's `:key`): a keyed entry that moves is sent as
// a move, not re-rendered. Without keys (or with a duplicate key) entries are matched by position.
class comprehension {
 public:
  explicit comprehension(const html_template& t);
  // Adds an entry rendered from this comprehension's template. Throws std::invalid_argument if
  // `entry` is of another template. `key` identifies the entry across renders ("" for none).
  comprehension& add(rendered entry, std::string key = {});
  const statics_ptr& statics() const noexcept { return statics_; }
  std::size_t size() const noexcept { return entries_.size(); }
  const std::vector<dynamic>& entry(std::size_t i) const { return entries_[i]; }
  // Keys, one per entry, if every entry has a distinct non-empty key; else empty (by position).
  std::vector<std::string_view> keys() const;

 private:
  statics_ptr statics_;
  std::vector<std::vector<dynamic>> entries_;
  std::vector<std::string> keys_;
};

// What fills one hole: escaped HTML text, a nested render, or a comprehension.
class dynamic {
 public:
  // Text, escaped.
  dynamic(std::string_view text) : v_(escape_html(text)) {}
  dynamic(const char* text) : v_(escape_html(text)) {}
  dynamic(const std::string& text) : v_(escape_html(text)) {}
  // Numbers, as decimal text.
  template <class N>
    requires(std::is_arithmetic_v<N> && !std::is_same_v<N, bool> && !std::is_same_v<N, char>)
  dynamic(N n) : v_(number(n)) {}
  dynamic(safe_html html) : v_(std::move(html.html)) {}
  dynamic(rendered r) : v_(std::move(r)) {}
  dynamic(comprehension c) : v_(std::move(c)) {}

  // The HTML text (already escaped), or nullptr if this is not text.
  const std::string* html() const noexcept { return std::get_if<std::string>(&v_); }
  const rendered* node() const noexcept { return std::get_if<rendered>(&v_); }
  const comprehension* list() const noexcept { return std::get_if<comprehension>(&v_); }

 private:
  template <class N>
  static std::string number(N n) {
    if constexpr (std::is_integral_v<N>) {
      return std::to_string(n);
    } else {
      return format_double(double(n));
    }
  }
  static std::string format_double(double d);
  std::variant<std::string, rendered, comprehension> v_;
};

// A template: HTML with `{}` for each hole (`{{` and `}}` are literal braces), parsed once.
// Calling it renders: one value per hole, in order.
class html_template {
 public:
  // Throws template_error for an unmatched brace.
  explicit html_template(std::string_view source);
  std::size_t holes() const noexcept { return statics_->size() - 1; }
  const statics_ptr& statics() const noexcept { return statics_; }
  // A render with these values (anything a dynamic is made from). Throws std::invalid_argument if
  // their number is not holes().
  template <class... V>
  rendered operator()(V&&... values) const {
    std::vector<dynamic> d;
    d.reserve(sizeof...(V));
    (d.emplace_back(std::forward<V>(values)), ...);
    return render(std::move(d));
  }
  rendered render(std::vector<dynamic> values) const;

 private:
  statics_ptr statics_;
};

// The page's HTML for `r` (what the dead render serves, and what the client builds from the
// tree: the same bytes).
std::string to_html(const rendered& r);

// The tree for a client that has `before` (nullptr: nothing yet), as the JSON the client merges
// (§C.3; keys "s", "0".., "k", "kc", "km" as binaries; an empty map when nothing changed). A full
// render carries every static of every node; a diff only the dynamics that differ, nested nodes
// of the same template as diffs, comprehensions as keyed diffs (changed entries, moves with
// "km": true, "kc" always). Send diffs in order: each is against exactly the previous tree.
term diff(const rendered* before, const rendered& now);

// ---- the client's side (for tests and clients written in C++) ----

// Merges `diff` into `tree` as the official client does (rendered.js mergeDiff: a node with "s"
// replaces, a map merges key by key, keyed comprehensions by entry with moves, anything else
// replaces). `tree` starts as a join's "rendered" (or an empty map). Top-level "t", "e" and "r"
// are not part of the tree: take them out first. Throws std::invalid_argument for a diff the
// client could not merge (a move without "km", an entry index out of range).
void merge_diff(term& tree, const term& diff);
// The HTML the client renders from `tree` (the same bytes to_html gives for the render it came from).
std::string tree_to_html(const term& tree);

}  // namespace athanor::live
