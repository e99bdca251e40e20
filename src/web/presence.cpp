// Presence (presence.h).
//
// Design
// ======
// What a client needs: the list of who is on a topic when it joins (presence_state), then every
// change as it happens (presence_diff), each entry a meta with a unique phx_ref, so that its
// Presence object can merge joins and leaves by phx_ref (phoenix-protocol.md §B).
//
// The registry: one mutex over topic -> key -> entries (owner process, meta), plus an index of
// what each process tracks, so that a channel's end untracks everything it had in one look. A
// change is made under the lock and its diff broadcast after it (broadcast() takes its own shard
// lock; the registry lock is never held while pushing). Ownership is Phoenix's: an entry belongs
// to the channel process that tracked it; the channel's frame holds a guard whose destructor
// untracks it (channel.cpp), so a crash or a kill leaves nothing behind and needs no monitor.
//
// Rejected:
//   * A Presence server process (Phoenix.Tracker's shard): every track a message and a wait,
//     where here the caller is the channel's own process and the lock is held for a map update.
//   * Monitors of tracked processes: the guard in the channel's frame is as sure, and free.
//
// Across nodes (pubsub.cpp's relay): each node is the only writer of its own channels' entries,
// so replicas converge by applying each owner's changes in order (they travel through the two
// relays, and distribution keeps per-pair order) on top of a snapshot sent when the relays meet;
// a node going down takes its entries with it. Applying is idempotent by phx_ref (a change
// already in a snapshot is ignored when its delta follows). That is what Phoenix.Tracker's delta
// CRDT guarantees, here with a single writer per entry; concurrent joins and leaves on different
// nodes touch different writers' entries and commute. Diffs are broadcast on each node by the
// node that applies the change (never forwarded as broadcasts), so a node's clients see exactly
// the changes its registry went through, and a presence_state taken from it is never behind
// the diffs they got.
//
// Invariants:
//   1. Every entry's owner is a live process, or one whose guard is running untrack_process.
//   2. phx_refs are unique for the life of the OS process.
#include "athanor/web/presence.h"

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <tuple>
#include <algorithm>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "athanor/dist/node.h"
#include "athanor/term/json.h"
#include "web/cluster_internal.h"

namespace athanor::web::presence {

namespace {

struct entry {
  pid owner;
  term meta;  // with phx_ref
  std::string ref;
};

struct registry {
  std::mutex mu;
  std::unordered_map<std::string, std::map<std::string, std::vector<entry>>> topics;
  std::unordered_map<pid, std::vector<std::pair<std::string, std::string>>> by_owner;  // (topic, key)
};

registry& reg() {
  static registry r;
  return r;
}

// A unique phx_ref: this OS process's random prefix and a counter, in base 32.
std::string new_ref() {
  static const std::uint64_t prefix = std::random_device{}() ^ (std::uint64_t(std::random_device{}()) << 32);
  static std::atomic<std::uint64_t> counter{0};
  const std::uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out = "F";
  for (std::uint64_t v = prefix; out.size() < 8; v >>= 5) out += digits[v & 31];
  std::uint64_t v = n;
  do {
    out += digits[v & 31];
    v >>= 5;
  } while (v != 0);
  return out;
}

term with(const term& meta, std::initializer_list<std::pair<term, term>> extra) {
  const auto old = meta.map_entries();
  std::vector<std::pair<term, term>> entries(old.begin(), old.end());
  for (const auto& e : extra) entries.push_back(e);
  return map(entries);
}

term metas_of(const std::vector<term>& metas) { return map({{term("metas"), list(metas)}}); }

// {"joins": {key: {"metas": [...]}}, "leaves": {...}}
term diff(const std::map<std::string, std::vector<term>>& joins, const std::map<std::string, std::vector<term>>& leaves) {
  std::vector<std::pair<term, term>> j, l;
  for (const auto& [k, v] : joins) j.emplace_back(term(k), metas_of(v));
  for (const auto& [k, v] : leaves) l.emplace_back(term(k), metas_of(v));
  return map({{term("joins"), map(j)}, {term("leaves"), map(l)}});
}

term checked_meta(term meta, const std::string& ref) {
  if (!meta.is_map()) throw std::invalid_argument("athanor::web::presence: a meta must be a map");
  term full = with(meta, {{term("phx_ref"), term(ref)}});
  (void)json::encode(full);  // json_error now rather than at every broadcast
  return full;
}

}  // namespace

std::optional<std::string> track(socket& s, std::string_view key, term meta) {
  const std::string ref = new_ref();
  const term full = checked_meta(std::move(meta), ref);
  {
    registry& r = reg();
    std::lock_guard lock(r.mu);
    std::vector<entry>& entries = r.topics[s.topic()][std::string(key)];
    for (const entry& e : entries) {
      if (e.owner == s.channel_pid()) return std::nullopt;
    }
    entries.push_back(entry{s.channel_pid(), full, ref});
    r.by_owner[s.channel_pid()].emplace_back(s.topic(), std::string(key));
  }
  web::detail::local_broadcast(s.topic(), "presence_diff", diff({{std::string(key), {full}}}, {}), pid());
  web::detail::replicate_presence(tuple(atom("athanor_presence"), atom("join"), term(s.topic()), term(std::string(key)), full,
                                        term(s.channel_pid()), term(ref)));
  return ref;
}

std::optional<std::string> update(socket& s, std::string_view key, term meta) {
  const std::string ref = new_ref();
  term full = checked_meta(std::move(meta), ref);
  term old;
  std::string old_ref;
  {
    registry& r = reg();
    std::lock_guard lock(r.mu);
    auto t = r.topics.find(s.topic());
    if (t == r.topics.end()) return std::nullopt;
    auto k = t->second.find(std::string(key));
    if (k == t->second.end()) return std::nullopt;
    entry* mine = nullptr;
    for (entry& e : k->second) {
      if (e.owner == s.channel_pid()) {
        mine = &e;
        break;
      }
    }
    if (!mine) return std::nullopt;
    full = with(full, {{term("phx_ref_prev"), term(mine->ref)}});
    old = mine->meta;
    old_ref = mine->ref;
    mine->meta = full;
    mine->ref = ref;
  }
  web::detail::local_broadcast(s.topic(), "presence_diff", diff({{std::string(key), {full}}}, {{std::string(key), {old}}}), pid());
  web::detail::replicate_presence(tuple(atom("athanor_presence"), atom("update"), term(s.topic()), term(std::string(key)), full,
                                        term(s.channel_pid()), term(ref), term(old_ref)));
  return ref;
}

bool untrack(socket& s, std::string_view key) {
  std::vector<term> left;
  std::vector<std::string> left_refs;
  {
    registry& r = reg();
    std::lock_guard lock(r.mu);
    auto t = r.topics.find(s.topic());
    if (t == r.topics.end()) return false;
    auto k = t->second.find(std::string(key));
    if (k == t->second.end()) return false;
    std::erase_if(k->second, [&](const entry& e) {
      if (e.owner != s.channel_pid()) return false;
      left.push_back(e.meta);
      left_refs.push_back(e.ref);
      return true;
    });
    if (k->second.empty()) t->second.erase(k);
    if (t->second.empty()) r.topics.erase(t);
    auto o = r.by_owner.find(s.channel_pid());
    if (o != r.by_owner.end()) {
      std::erase_if(o->second, [&](const auto& tk) { return tk.first == s.topic() && tk.second == key; });
      if (o->second.empty()) r.by_owner.erase(o);
    }
  }
  if (left.empty()) return false;
  web::detail::local_broadcast(s.topic(), "presence_diff", diff({}, {{std::string(key), left}}), pid());
  for (const std::string& ref : left_refs) {
    web::detail::replicate_presence(tuple(atom("athanor_presence"), atom("leave"), term(s.topic()), term(std::string(key)),
                                          term(s.channel_pid()), term(ref)));
  }
  return true;
}

term list(std::string_view topic) {
  registry& r = reg();
  std::lock_guard lock(r.mu);
  auto t = r.topics.find(std::string(topic));
  if (t == r.topics.end()) return map({});
  std::vector<std::pair<term, term>> out;
  for (const auto& [key, entries] : t->second) {
    std::vector<term> metas;
    for (const entry& e : entries) metas.push_back(e.meta);
    out.emplace_back(term(key), metas_of(metas));
  }
  return map(out);
}

void detail::untrack_process(pid p) noexcept {
  // topic -> key -> metas that left
  std::map<std::string, std::map<std::string, std::vector<term>>> left;
  std::vector<term> deltas;
  try {
    registry& r = reg();
    std::lock_guard lock(r.mu);
    auto o = r.by_owner.find(p);
    if (o == r.by_owner.end()) return;
    for (const auto& [topic, key] : o->second) {
      auto t = r.topics.find(topic);
      if (t == r.topics.end()) continue;
      auto k = t->second.find(key);
      if (k == t->second.end()) continue;
      std::erase_if(k->second, [&](const entry& e) {
        if (e.owner != p) return false;
        left[topic][key].push_back(e.meta);
        deltas.push_back(tuple(atom("athanor_presence"), atom("leave"), term(topic), term(key), term(p), term(e.ref)));
        return true;
      });
      if (k->second.empty()) t->second.erase(k);
      if (t->second.empty()) r.topics.erase(t);
    }
    r.by_owner.erase(o);
  } catch (...) {
    return;  // out of memory while collecting: the entries stay (a later untrack may take them)
  }
  for (const auto& [topic, keys] : left) {
    try {
      web::detail::local_broadcast(topic, "presence_diff", diff({}, keys), pid());
    } catch (...) {
      // Metas were checked as JSON when tracked; only memory can fail here, and a missed diff
      // is corrected by the next presence_state a client gets.
    }
  }
  for (term& d : deltas) web::detail::replicate_presence(std::move(d));
}

// ---- replicas of other nodes' entries (the relay, pubsub.cpp) ------------------------------------

namespace {
bool owned_by(const entry& e, atom node) { return !e.owner.is_local() && dist::node_of(e.owner) == node; }

// Applies joins and leaves to the registry and broadcasts their diff to this node's clients.
// joins: (topic, key, entry); leaves: (topic, key, ref). A join whose ref is there, or a leave
// whose ref is not, changes nothing (idempotent).
void apply_changes(const std::vector<std::tuple<std::string, std::string, entry>>& joins,
           const std::vector<std::tuple<std::string, std::string, std::string>>& leaves) {
  std::map<std::string, std::pair<std::map<std::string, std::vector<term>>, std::map<std::string, std::vector<term>>>> diffs;
  {
    registry& r = reg();
    std::lock_guard lock(r.mu);
    for (const auto& [topic, key, e] : joins) {
      std::vector<entry>& v = r.topics[topic][key];
      if (std::any_of(v.begin(), v.end(), [&](const entry& x) { return x.ref == e.ref; })) continue;
      v.push_back(e);
      diffs[topic].first[key].push_back(e.meta);
    }
    for (const auto& [topic, key, ref] : leaves) {
      auto t = r.topics.find(topic);
      if (t == r.topics.end()) continue;
      auto k = t->second.find(key);
      if (k == t->second.end()) continue;
      std::erase_if(k->second, [&](const entry& x) {
        if (x.ref != ref) return false;
        diffs[topic].second[key].push_back(x.meta);
        return true;
      });
      if (k->second.empty()) t->second.erase(k);
      if (t->second.empty()) r.topics.erase(t);
    }
  }
  for (const auto& [topic, d] : diffs) {
    try {
      web::detail::local_broadcast(topic, "presence_diff", diff(d.first, d.second), pid());
    } catch (...) {
      // A peer's meta with no JSON form (its node checked it): the registry still holds it.
    }
  }
}

// (topic, key, ref) of every entry `node` owns here, but those whose ref is in `except`.
std::vector<std::tuple<std::string, std::string, std::string>> entries_of(atom node, const std::set<std::string>* except) {
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  registry& r = reg();
  std::lock_guard lock(r.mu);
  for (const auto& [topic, keys] : r.topics) {
    for (const auto& [key, v] : keys) {
      for (const entry& e : v) {
        if (owned_by(e, node) && !(except && except->count(e.ref))) out.emplace_back(topic, key, e.ref);
      }
    }
  }
  return out;
}

std::string text_of(const term& t) { return t.is_binary() ? std::string(t.as_binary()) : std::string(); }
}  // namespace

void detail::apply_remote(const term& d) noexcept {
  try {
    if (!d.is_tuple() || d.tuple_size() < 6) return;
    const term& kind = d.element(1);
    const std::string topic = text_of(d.element(2)), key = text_of(d.element(3));
    if (kind == term(atom("join")) && d.tuple_size() == 7 && d.element(5).is_pid()) {
      apply_changes({{topic, key, entry{d.element(5).as_pid(), d.element(4), text_of(d.element(6))}}}, {});
    } else if (kind == term(atom("leave")) && d.tuple_size() == 6) {
      apply_changes({}, {{topic, key, text_of(d.element(5))}});
    } else if (kind == term(atom("update")) && d.tuple_size() == 8 && d.element(5).is_pid()) {
      apply_changes({{topic, key, entry{d.element(5).as_pid(), d.element(4), text_of(d.element(6))}}}, {{topic, key, text_of(d.element(7))}});
    }
  } catch (...) {
    // A malformed delta from a peer: ignored.
  }
}

void detail::apply_snapshot(atom node, const term& entries) noexcept {
  try {
    std::vector<std::tuple<std::string, std::string, entry>> joins;
    std::set<std::string> fresh;
    for (term t = entries; t.is_list() && !t.is_nil(); t = t.tail()) {
      const term& e = t.head();  // {Topic, Key, Meta, Owner, Ref}
      if (!e.is_tuple() || e.tuple_size() != 5 || !e.element(3).is_pid()) continue;
      joins.emplace_back(text_of(e.element(0)), text_of(e.element(1)), entry{e.element(3).as_pid(), e.element(2), text_of(e.element(4))});
      fresh.insert(text_of(e.element(4)));
    }
    apply_changes(joins, entries_of(node, &fresh));  // leaves: what that node no longer has
  } catch (...) {
  }
}

void detail::drop_node(atom node) noexcept {
  try {
    apply_changes({}, entries_of(node, nullptr));
  } catch (...) {
  }
}

term detail::local_snapshot() {
  std::vector<term> out;
  registry& r = reg();
  std::lock_guard lock(r.mu);
  for (const auto& [topic, keys] : r.topics) {
    for (const auto& [key, v] : keys) {
      for (const entry& e : v) {
        if (e.owner.is_local()) out.push_back(tuple(term(topic), term(key), e.meta, term(e.owner), term(e.ref)));
      }
    }
  }
  return list(out);
}

}  // namespace athanor::web::presence
