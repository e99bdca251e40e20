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
// Across nodes (next): each node is the only writer of its own channels' entries, so replicas
// converge by applying each owner's changes in order (distribution keeps per-pair order) plus a
// snapshot when a node comes up; a node going down takes its entries with it. That is the
// property Phoenix.Tracker's delta CRDT guarantees, with a single writer per entry.
//
// Invariants:
//   1. Every entry's owner is a live process, or one whose guard is running untrack_process.
//   2. phx_refs are unique for the life of the OS process.
#include "athanor/web/presence.h"

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "athanor/term/json.h"

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
  web::broadcast(s.topic(), "presence_diff", diff({{std::string(key), {full}}}, {}));
  return ref;
}

std::optional<std::string> update(socket& s, std::string_view key, term meta) {
  const std::string ref = new_ref();
  term full = checked_meta(std::move(meta), ref);
  term old;
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
    mine->meta = full;
    mine->ref = ref;
  }
  web::broadcast(s.topic(), "presence_diff", diff({{std::string(key), {full}}}, {{std::string(key), {old}}}));
  return ref;
}

bool untrack(socket& s, std::string_view key) {
  std::vector<term> left;
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
  web::broadcast(s.topic(), "presence_diff", diff({}, {{std::string(key), left}}));
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
      web::broadcast(topic, "presence_diff", diff({}, keys));
    } catch (...) {
      // Metas were checked as JSON when tracked; only memory can fail here, and a missed diff
      // is corrected by the next presence_state a client gets.
    }
  }
}

}  // namespace athanor::web::presence
