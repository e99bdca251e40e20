// Rendered trees and their diffs (rendered.h).
//
// Design
// ======
// What the client holds. The official client keeps, per LiveView, the last tree it merged
// (rendered.js): nodes with their statics, comprehensions with their entries. A diff is merged
// into it key by key: a node with "s" replaces the subtree; an object without "s" merges into it;
// a string replaces; absent keys stay. Diffs carry no sequence number, so the server must compute
// each against exactly the tree it sent before (the LiveView keeps its last render for that).
//
// Fingerprints. A template's statics are made once (html_template) and shared by pointer; two
// renders are of the same template when their statics are the same object. Comparing the pointer
// is what lets a diff skip the statics and descend into the dynamics; content-equal statics of two
// different templates are simply sent again (correct, and rare).
//
// Change detection compares rendered values, not assigns: a dynamic is re-sent when its text (or,
// recursively, its subtree) differs from what was sent. It costs a walk of the new tree against
// the old, which is what Phoenix's per-assign tracking avoids; the walk touches only dynamics (the
// statics are shared), and lets any code produce the tree without declaring what it read.
//
// Comprehensions are sent in the keyed form of LiveView >= 1.1: "k" maps an index to an entry
// (complete when new, a diff when it changed in place, an old index when it moved unchanged,
// [old index, diff] when it moved and changed), "kc" is always present (the client renders an
// entry list without it as empty) and "km": true whenever an entry moved (the 1.2 client only
// snapshots old positions then). Entries are matched by key when every entry has a distinct key,
// else by position (nothing moves).
//
// Rejected:
//   * Templates shared through "p": the client accepts inline statics everywhere, and "p" saves
//     bytes only where one template repeats in a single message (a later step).
//   * "r": 1 on nodes: an optimisation of the client's DOM patching, mandatory only on
//     LiveComponent roots (not rendered here yet).
#include "athanor/live/rendered.h"

#include <fmt/format.h>

#include <optional>
#include <unordered_map>
#include <unordered_set>

namespace athanor::live {

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string dynamic::format_double(double d) { return fmt::format("{}", d); }

rendered::rendered(statics_ptr statics, std::vector<dynamic> dynamics)
    : statics_(std::move(statics)), dynamics_(std::move(dynamics)) {
  if (!statics_ || statics_->size() != dynamics_.size() + 1)
    throw std::invalid_argument("live::rendered: a node has one static more than it has dynamics");
}

comprehension::comprehension(const html_template& t) : statics_(t.statics()) {}

comprehension& comprehension::add(rendered entry, std::string key) {
  if (entry.statics() != statics_) throw std::invalid_argument("live::comprehension: an entry of another template");
  entries_.push_back(std::vector<dynamic>(entry.dynamics()));
  keys_.push_back(std::move(key));
  return *this;
}

std::vector<std::string_view> comprehension::keys() const {
  std::vector<std::string_view> keys;
  std::unordered_set<std::string_view> seen;
  keys.reserve(keys_.size());
  for (const std::string& k : keys_) {
    if (k.empty() || !seen.insert(k).second) return {};
    keys.push_back(k);
  }
  return keys;
}

html_template::html_template(std::string_view source) {
  std::vector<std::string> statics(1);
  for (std::size_t i = 0; i < source.size(); ++i) {
    const char c = source[i];
    const bool doubled = i + 1 < source.size() && source[i + 1] == c;
    if (c == '{' && doubled) {
      statics.back() += '{';
      ++i;
    } else if (c == '{') {
      if (i + 1 >= source.size() || source[i + 1] != '}')
        throw template_error(fmt::format("live::html_template: '{{' at {} is not a hole '{{}}' or a literal '{{{{'", i));
      statics.emplace_back();
      ++i;
    } else if (c == '}' && doubled) {
      statics.back() += '}';
      ++i;
    } else if (c == '}') {
      throw template_error(fmt::format("live::html_template: '}}' at {} is not closing a hole (write '}}}}')", i));
    } else {
      statics.back() += c;
    }
  }
  statics_ = std::make_shared<const std::vector<std::string>>(std::move(statics));
}

rendered html_template::render(std::vector<dynamic> values) const {
  if (values.size() != holes())
    throw std::invalid_argument(fmt::format("live::html_template: {} values for {} holes", values.size(), holes()));
  return rendered(statics_, std::move(values));
}

namespace {

void append_html(std::string& out, const std::vector<std::string>& statics, const std::vector<dynamic>& dynamics);

void append_dynamic(std::string& out, const dynamic& d) {
  if (const std::string* text = d.html()) {
    out += *text;
  } else if (const rendered* node = d.node()) {
    append_html(out, *node->statics(), node->dynamics());
  } else if (const comprehension* list = d.list()) {
    for (std::size_t i = 0; i < list->size(); ++i) append_html(out, *list->statics(), list->entry(i));
  }
}

void append_html(std::string& out, const std::vector<std::string>& statics, const std::vector<dynamic>& dynamics) {
  for (std::size_t i = 0; i < dynamics.size(); ++i) {
    out += statics[i];
    append_dynamic(out, dynamics[i]);
  }
  out += statics.back();
}

term index_key(std::size_t i) { return term(std::to_string(i)); }

term statics_term(const statics_ptr& s) {
  std::vector<term> items;
  items.reserve(s->size());
  for (const std::string& x : *s) items.emplace_back(x);
  return list(items);
}

term full_dynamic(const dynamic& d);

// Every dynamic of an entry (or a node, without its statics), complete.
void add_full_dynamics(std::vector<std::pair<term, term>>& out, const std::vector<dynamic>& dynamics) {
  for (std::size_t i = 0; i < dynamics.size(); ++i) out.emplace_back(index_key(i), full_dynamic(dynamics[i]));
}

term full_node(const rendered& r) {
  std::vector<std::pair<term, term>> out;
  out.reserve(r.dynamics().size() + 1);
  out.emplace_back(term("s"), statics_term(r.statics()));
  add_full_dynamics(out, r.dynamics());
  return map(out);
}

term full_comprehension(const comprehension& c) {
  std::vector<std::pair<term, term>> entries;
  entries.reserve(c.size() + 1);
  for (std::size_t i = 0; i < c.size(); ++i) {
    std::vector<std::pair<term, term>> e;
    add_full_dynamics(e, c.entry(i));
    entries.emplace_back(index_key(i), map(e));
  }
  entries.emplace_back(term("kc"), term(c.size()));
  return map({{term("s"), statics_term(c.statics())}, {term("k"), map(entries)}});
}

term full_dynamic(const dynamic& d) {
  if (const std::string* text = d.html()) return term(*text);
  if (const rendered* node = d.node()) return full_node(*node);
  return full_comprehension(*d.list());
}

std::optional<term> diff_dynamic(const dynamic& before, const dynamic& now);

// The changed dynamics of `now` against `before` (same template), as index -> value pairs.
std::vector<std::pair<term, term>> diff_dynamics(const std::vector<dynamic>& before, const std::vector<dynamic>& now) {
  std::vector<std::pair<term, term>> out;
  for (std::size_t i = 0; i < now.size(); ++i) {
    if (std::optional<term> d = diff_dynamic(before[i], now[i])) out.emplace_back(index_key(i), std::move(*d));
  }
  return out;
}

std::optional<term> diff_comprehension(const comprehension& before, const comprehension& now) {
  const std::vector<std::string_view> old_keys = before.keys(), new_keys = now.keys();
  const bool keyed = !old_keys.empty() && !new_keys.empty();
  std::unordered_map<std::string_view, std::size_t> old_at;
  if (keyed) {
    old_at.reserve(old_keys.size());
    for (std::size_t j = 0; j < old_keys.size(); ++j) old_at.emplace(old_keys[j], j);
  }
  std::vector<std::pair<term, term>> entries;
  bool moved = false;
  for (std::size_t i = 0; i < now.size(); ++i) {
    std::optional<std::size_t> was;
    if (keyed) {
      if (auto it = old_at.find(new_keys[i]); it != old_at.end()) was = it->second;
    } else if (i < before.size()) {
      was = i;
    }
    if (!was) {  // a new entry: complete
      std::vector<std::pair<term, term>> e;
      add_full_dynamics(e, now.entry(i));
      entries.emplace_back(index_key(i), map(e));
      continue;
    }
    std::vector<std::pair<term, term>> changed = diff_dynamics(before.entry(*was), now.entry(i));
    if (*was == i) {
      if (!changed.empty()) entries.emplace_back(index_key(i), map(changed));
      continue;
    }
    moved = true;
    if (changed.empty()) {
      entries.emplace_back(index_key(i), term(*was));
    } else {
      entries.emplace_back(index_key(i), list({term(*was), map(changed)}));
    }
  }
  if (entries.empty() && now.size() == before.size()) return std::nullopt;
  entries.emplace_back(term("kc"), term(now.size()));
  if (moved) entries.emplace_back(term("km"), term(true));
  return map({{term("k"), map(entries)}});
}

std::optional<term> diff_dynamic(const dynamic& before, const dynamic& now) {
  if (const std::string* text = now.html()) {
    const std::string* old = before.html();
    if (old && *old == *text) return std::nullopt;
    return term(*text);
  }
  if (const rendered* node = now.node()) {
    const rendered* old = before.node();
    if (!old || old->statics() != node->statics()) return full_node(*node);
    std::vector<std::pair<term, term>> changed = diff_dynamics(old->dynamics(), node->dynamics());
    if (changed.empty()) return std::nullopt;
    return map(changed);
  }
  const comprehension& list = *now.list();
  const comprehension* old = before.list();
  if (!old || old->statics() != list.statics()) return full_comprehension(list);
  return diff_comprehension(*old, list);
}

// ---- the client's side ----

const term* get(const term& m, std::string_view key) { return m.is_map() ? m.find(term(key)) : nullptr; }

term put(const term& m, const term& key, term value) {
  std::vector<std::pair<term, term>> entries;
  if (m.is_map()) {
    for (const auto& [k, v] : m.map_entries())
      if (k != key) entries.emplace_back(k, v);
  }
  entries.emplace_back(key, std::move(value));
  return map(entries);
}

term merged(const term& tree, const term& diff);

// A keyed comprehension's "k" merged as rendered.js mergeKeyed does.
term merged_keyed(const term& old_k, const term& diff_k) {
  const term* kc = get(diff_k, "kc");
  if (!kc || !kc->is_int64()) throw std::invalid_argument("live::merge_diff: a keyed diff without kc");
  const bool moves = get(diff_k, "km") != nullptr;
  const std::int64_t count = kc->as_int();
  auto old_entry = [&](std::int64_t j) -> term {
    const term* e = get(old_k, std::to_string(j));
    if (!e) throw std::invalid_argument("live::merge_diff: a move from an entry that was not there");
    return *e;
  };
  std::vector<std::pair<term, term>> out;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::string key = std::to_string(i);
    const term* d = get(diff_k, key);
    term entry;
    if (!d) {
      entry = old_entry(i);
    } else if (d->is_int64()) {
      if (!moves) throw std::invalid_argument("live::merge_diff: a moved entry without km");
      entry = old_entry(d->as_int());
    } else if (d->is_list()) {
      if (!moves) throw std::invalid_argument("live::merge_diff: a moved entry without km");
      auto it = d->list_elements().begin();
      const term from = *it;
      ++it;
      entry = merged(old_entry(from.as_int()), *it);
    } else {
      const term* old = get(old_k, key);
      entry = old ? merged(*old, *d) : *d;
    }
    out.emplace_back(term(key), std::move(entry));
  }
  out.emplace_back(term("kc"), term(count));
  return map(out);
}

term merged(const term& tree, const term& diff) {
  if (!diff.is_map() || get(diff, "s") || !tree.is_map()) return diff;
  term out = tree;
  for (const auto& [k, v] : diff.map_entries()) {
    if (k == term("k")) {
      const term* old = get(tree, "k");
      out = put(out, k, merged_keyed(old ? *old : map({}), v));
    } else if (const term* old = out.find(k); old && v.is_map() && !get(v, "s")) {
      out = put(out, k, merged(*old, v));
    } else {
      out = put(out, k, v);
    }
  }
  return out;
}

void append_tree(std::string& out, const term& node, const term* statics_override = nullptr);

void append_tree_dynamic(std::string& out, const term& d) {
  if (d.is_binary()) out += d.as_binary();
  else if (d.is_map()) append_tree(out, d);
}

void append_interleaved(std::string& out, const term& statics, const term& dynamics) {
  std::size_t i = 0;
  for (const term& s : statics.list_elements()) {
    if (i > 0) {
      if (const term* d = get(dynamics, std::to_string(i - 1))) append_tree_dynamic(out, *d);
    }
    out += s.as_binary();
    ++i;
  }
}

void append_tree(std::string& out, const term& node, const term*) {
  const term* statics = get(node, "s");
  if (!statics || !statics->is_list()) return;
  if (const term* k = get(node, "k")) {
    const term* kc = get(*k, "kc");
    const std::int64_t n = kc && kc->is_int64() ? kc->as_int() : 0;
    for (std::int64_t i = 0; i < n; ++i) {
      if (const term* e = get(*k, std::to_string(i))) append_interleaved(out, *statics, *e);
    }
    return;
  }
  append_interleaved(out, *statics, node);
}

}  // namespace

void merge_diff(term& tree, const term& diff) { tree = merged(tree, diff); }

std::string tree_to_html(const term& tree) {
  std::string out;
  append_tree(out, tree);
  return out;
}

std::string to_html(const rendered& r) {
  std::string out;
  append_html(out, *r.statics(), r.dynamics());
  return out;
}

term diff(const rendered* before, const rendered& now) {
  if (!before || before->statics() != now.statics()) return full_node(now);
  return map(diff_dynamics(before->dynamics(), now.dynamics()));
}

}  // namespace athanor::live
