// node_settings from a config file, the environment and flags: see athanor/runtime/config.h.
//
// Every key is described once, in kKeys: its file key, the kind of value it takes, its range and
// where the parsed value goes. The environment variable and the flag are derived from the key
// (ATHANOR_<KEY>, --<key with '-'>), so the three sources cannot drift apart.
#include "athanor/runtime/config.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "athanor/term/parse.h"
#include "athanor/term/pid.h"
#include "athanor/term/term.h"

namespace athanor {
namespace {

enum class kind {
  node_name,  // 'name' or 'name@host'
  text,       // any non-empty text (the cookie)
  count,      // a non-negative integer in [min, max]
  boolean,
  level,      // one of kLogLevelNames
};

// A parsed value: `text` for node_name, text and level; `number` for count; `flag` for boolean.
struct value {
  std::string text;
  std::uint64_t number = 0;
  bool flag = false;
};

struct key_spec {
  std::string_view key;
  kind type;
  std::uint64_t min = 0, max = 0;  // for count
  std::string_view metavar;        // the flag's value in --help
  std::string_view help;
  void (*set)(node_settings&, const value&);
};

// Erlang's own bound (erl +S takes at most 1024); far more threads than that is a typo, and
// starting billions of threads would end the program instead of reporting it.
constexpr std::uint64_t kMaxThreads = 1024;
constexpr std::uint64_t kMaxProcesses = (std::uint64_t(1) << pid::kIndexBits) - 1;
constexpr std::size_t kMaxFileBytes = 1 << 20;

constexpr key_spec kKeys[] = {
    {"node", kind::node_name, 0, 0, "NAME", "this node's name, 'name' or 'name@host'",
     [](node_settings& s, const value& v) { s.node = v.text; }},
    {"long_names", kind::boolean, 0, 0, "BOOL", "the node name's host is a full domain name",
     [](node_settings& s, const value& v) { s.long_names = v.flag; }},
    {"cookie", kind::text, 0, 0, "TEXT", "the distribution cookie",
     [](node_settings& s, const value& v) { s.cookie = v.text; }},
    {"schedulers", kind::count, 0, kMaxThreads, "N", "scheduler threads (0: one per core)",
     [](node_settings& s, const value& v) { s.schedulers = unsigned(v.number); }},
    {"log_level", kind::level, 0, 0, "LEVEL", "least severe level logged: emergency..debug (default notice)",
     [](node_settings& s, const value& v) { s.log_level = v.text; }},
    {"max_processes", kind::count, 1, kMaxProcesses, "N", "live processes at most",
     [](node_settings& s, const value& v) { s.max_processes = std::size_t(v.number); }},
    {"max_heap_bytes", kind::count, 0, std::numeric_limits<std::size_t>::max(), "N",
     "default per-process memory limit (0: none)",
     [](node_settings& s, const value& v) { s.max_heap_bytes = std::size_t(v.number); }},
    {"reductions_per_slice", kind::count, 1, std::numeric_limits<std::int32_t>::max(), "N",
     "reductions in one time slice",
     [](node_settings& s, const value& v) { s.reductions_per_slice = std::int32_t(v.number); }},
    {"hog_threshold_ms", kind::count, 1, std::numeric_limits<std::int32_t>::max(), "N",
     "ms in one process before its scheduler gets relief",
     [](node_settings& s, const value& v) { s.hog_threshold = std::chrono::milliseconds(v.number); }},
    {"max_relief_threads", kind::count, 0, kMaxThreads, "N", "extra scheduler threads started for CPU hogs, at most",
     [](node_settings& s, const value& v) { s.max_relief_threads = unsigned(v.number); }},
    {"dirty_cpu_threads", kind::count, 0, kMaxThreads, "N", "dirty CPU threads (0: one per core)",
     [](node_settings& s, const value& v) { s.dirty_cpu_threads = unsigned(v.number); }},
    {"dirty_io_threads", kind::count, 1, kMaxThreads, "N", "dirty I/O threads",
     [](node_settings& s, const value& v) { s.dirty_io_threads = unsigned(v.number); }},
    {"io_uring", kind::boolean, 0, 0, "BOOL", "attached sockets use io_uring if the kernel allows",
     [](node_settings& s, const value& v) { s.io_uring = v.flag; }},
};

constexpr std::string_view kConfigEnv = "ATHANOR_CONFIG";
constexpr std::string_view kConfigFlag = "--config";

std::string env_name(std::string_view key) {
  std::string name = "ATHANOR_";
  for (char c : key) name += char(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return name;
}

std::string flag_name(std::string_view key) {
  std::string name = "--";
  for (char c : key) name += c == '_' ? '-' : c;
  return name;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// `text` made fit for a one-line message: control characters escaped, long text cut.
std::string one_line(std::string_view text) {
  constexpr std::size_t kMax = 80;
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += char(c);
    }
  }
  if (text.size() > kMax) out += "...";
  return out;
}

std::string quoted(std::string_view text) { return "'" + one_line(text) + "'"; }

std::string level_list() {
  std::string out;
  for (std::string_view name : kLogLevelNames) {
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out;
}

std::string known_keys() {
  std::string out;
  for (const key_spec& k : kKeys) {
    if (!out.empty()) out += ", ";
    out += k.key;
  }
  return out;
}

// What a key takes, for "expected ..." in messages. `from_text`: the environment or a flag
// (numbers and booleans written as text), not a file.
std::string expectation(const key_spec& k, bool from_text) {
  switch (k.type) {
    case kind::node_name:
      return from_text ? "a node name such as app or app@host" : "a node name such as 'app@host' (an atom or string)";
    case kind::text:
      return from_text ? "a non-empty value" : "a non-empty atom or string";
    case kind::count:
      return "an integer from " + std::to_string(k.min) + " to " + std::to_string(k.max);
    case kind::boolean:
      return from_text ? "true, false, 1 or 0" : "true or false";
    case kind::level:
      return "one of " + level_list();
  }
  return {};
}

// Letters, digits, '_' and '-' (and '.' in a host): what Erlang accepts in a node name.
bool valid_name_part(std::string_view part, bool dots) {
  if (part.empty()) return false;
  for (char c : part) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '_' && c != '-' && !(dots && c == '.')) return false;
  }
  return true;
}

bool valid_node_name(std::string_view name) {
  const std::size_t at = name.find('@');
  if (at == std::string_view::npos) return valid_name_part(name, false);
  return valid_name_part(name.substr(0, at), false) && valid_name_part(name.substr(at + 1), true);
}

// Checks text-valued kinds (node_name, text, level) and stores the canonical text in `out`.
bool accept_text(const key_spec& k, std::string_view text, value& out) {
  switch (k.type) {
    case kind::node_name:
      if (!valid_node_name(text)) return false;
      break;
    case kind::text:
      if (text.empty()) return false;
      break;
    case kind::level:
      if (auto i = find_log_level(text)) {
        out.text = std::string(kLogLevelNames[*i]);
        return true;
      }
      return false;
    case kind::count:
    case kind::boolean:
      return false;
  }
  out.text = std::string(text);
  return true;
}

// A value from the environment or a flag. Returns false if `text` is not one for `k`.
bool parse_text_value(const key_spec& k, std::string_view text, value& out) {
  switch (k.type) {
    case kind::count: {
      // Plain decimal only: strtoull would take "-1" (as a huge number), " 5" and "5x".
      if (text.empty()) return false;
      std::uint64_t n = 0;
      for (char c : text) {
        if (c < '0' || c > '9') return false;
        const auto digit = std::uint64_t(c - '0');
        if (n > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
        n = n * 10 + digit;
      }
      if (n < k.min || n > k.max) return false;
      out.number = n;
      return true;
    }
    case kind::boolean:
      if (equals_ignoring_case(text, "true") || text == "1") {
        out.flag = true;
        return true;
      }
      if (equals_ignoring_case(text, "false") || text == "0") {
        out.flag = false;
        return true;
      }
      return false;
    default:
      return accept_text(k, text, out);
  }
}

// The text of an atom, a string (a list of code points, written back as UTF-8) or a binary.
std::optional<std::string> text_of(const term& t) {
  if (t.is_atom()) return std::string(t.as_atom().name());
  if (t.is_binary()) return std::string(t.as_binary());
  if (!t.is_list()) return std::nullopt;
  std::string out;
  term rest = t;
  while (rest.is_cons()) {
    const term& h = rest.head();
    if (!h.is_int64()) return std::nullopt;
    const std::int64_t c = h.as_int();
    if (c < 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return std::nullopt;
    const auto u = std::uint32_t(c);
    if (u < 0x80) {
      out += char(u);
    } else if (u < 0x800) {
      out += char(0xC0 | u >> 6);
      out += char(0x80 | (u & 0x3F));
    } else if (u < 0x10000) {
      out += char(0xE0 | u >> 12);
      out += char(0x80 | (u >> 6 & 0x3F));
      out += char(0x80 | (u & 0x3F));
    } else {
      out += char(0xF0 | u >> 18);
      out += char(0x80 | (u >> 12 & 0x3F));
      out += char(0x80 | (u >> 6 & 0x3F));
      out += char(0x80 | (u & 0x3F));
    }
    term next = rest.tail();
    rest = std::move(next);
  }
  if (!rest.is_nil()) return std::nullopt;
  return out;
}

// A value from a config file. Returns false if `t` is not one for `k`.
bool parse_term_value(const key_spec& k, const term& t, value& out) {
  switch (k.type) {
    case kind::count: {
      // A bignum is out of every range; a negative int64 too.
      if (!t.is_int64() || t.as_int() < 0) return false;
      const auto n = std::uint64_t(t.as_int());
      if (n < k.min || n > k.max) return false;
      out.number = n;
      return true;
    }
    case kind::boolean:
      if (!t.is_atom()) return false;
      if (t.as_atom().name() == "true") {
        out.flag = true;
        return true;
      }
      if (t.as_atom().name() == "false") {
        out.flag = false;
        return true;
      }
      return false;
    default: {
      std::optional<std::string> text = text_of(t);
      return text && accept_text(k, *text, out);
    }
  }
}

const key_spec* find_key(std::string_view key) {
  for (const key_spec& k : kKeys) {
    if (k.key == key) return &k;
  }
  return nullptr;
}

// The elements of a proper list, or nullopt for anything else.
std::optional<std::vector<term>> elements_of(const term& list) {
  if (!list.is_list()) return std::nullopt;
  std::vector<term> out;
  term rest = list;
  while (rest.is_cons()) {
    out.push_back(rest.head());
    term next = rest.tail();
    rest = std::move(next);
  }
  if (!rest.is_nil()) return std::nullopt;
  return out;
}

bool is_pair(const term& t) { return t.is_tuple() && t.tuple_size() == 2; }

// A printable list of code points (a string), as ~p prints it: "abc", not [97,98,99].
bool is_printable_string(const term& t) {
  if (!t.is_cons()) return false;
  term rest = t;
  while (rest.is_cons()) {
    const term& h = rest.head();
    if (!h.is_int64()) return false;
    const std::int64_t c = h.as_int();
    const bool control = c < 0x20 || c == 0x7f || (c > 0x7f && c < 0xa0);
    const bool not_a_character = c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF);
    // Quotes and backslashes would need escapes: the plain list form is clearer then.
    if (control || not_a_character || c == '"' || c == '\\') return false;
    term next = rest.tail();
    rest = std::move(next);
  }
  return rest.is_nil();
}

// `t` for a message: as term::to_string(), but strings (also inside tuples) shown as strings.
std::string render(const term& t) {
  if (is_printable_string(t)) return "\"" + *text_of(t) + "\"";
  if (t.is_tuple()) {
    std::string out = "{";
    for (std::size_t i = 0; i < t.tuple_size(); ++i) out += (i ? "," : "") + render(t.element(i));
    return out + "}";
  }
  return t.to_string();
}

std::string shown(const term& t) { return one_line(render(t)); }

[[noreturn]] void fail(std::string message) { throw config_error(std::move(message)); }

// Applies the {Key, Value} tuples of `proplist` to `out`.
void apply_proplist(const term& proplist, std::string_view source, node_settings& out) {
  std::optional<std::vector<term>> items = elements_of(proplist);
  if (!items) fail(std::string(source) + ": expected a list of {Key, Value} tuples, got " + shown(proplist));
  std::vector<const key_spec*> seen;
  for (const term& item : *items) {
    if (!is_pair(item) || !item.element(0).is_atom()) {
      fail(std::string(source) + ": expected a {Key, Value} tuple with an atom key, got " + shown(item));
    }
    const std::string_view key = item.element(0).as_atom().name();
    const key_spec* k = find_key(key);
    if (!k) fail(std::string(source) + ": unknown key " + quoted(key) + " (known: " + known_keys() + ")");
    // proplists:get_value would silently take the first; a key given twice is a mistake.
    for (const key_spec* s : seen) {
      if (s == k) fail(std::string(source) + ": " + std::string(key) + ": given twice");
    }
    seen.push_back(k);
    value v;
    if (!parse_term_value(*k, item.element(1), v)) {
      fail(std::string(source) + ": " + std::string(key) + ": expected " + expectation(*k, false) + ", got " +
           shown(item.element(1)));
    }
    k->set(out, v);
  }
}

}  // namespace

std::optional<std::size_t> find_log_level(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kLogLevelNames.size(); ++i) {
    if (equals_ignoring_case(name, kLogLevelNames[i])) return i;
  }
  return std::nullopt;
}

node_settings merge_settings(node_settings base, const node_settings& over) {
  auto take = [](auto& field, const auto& other) {
    if (other) field = other;
  };
  take(base.node, over.node);
  take(base.long_names, over.long_names);
  take(base.cookie, over.cookie);
  take(base.schedulers, over.schedulers);
  take(base.log_level, over.log_level);
  take(base.max_processes, over.max_processes);
  take(base.max_heap_bytes, over.max_heap_bytes);
  take(base.reductions_per_slice, over.reductions_per_slice);
  take(base.hog_threshold, over.hog_threshold);
  take(base.max_relief_threads, over.max_relief_threads);
  take(base.dirty_cpu_threads, over.dirty_cpu_threads);
  take(base.dirty_io_threads, over.dirty_io_threads);
  take(base.io_uring, over.io_uring);
  take(base.config_file, over.config_file);
  return base;
}

node_settings parse_settings(std::string_view text, std::string_view source) {
  term t;
  try {
    t = parse_term(text);
  } catch (const parse_error& e) {
    std::string_view why = e.what();
    if (why.starts_with("parse_term: ")) why.remove_prefix(12);
    fail(std::string(source) + ": not a term in Erlang syntax: " + one_line(why));
  }
  node_settings out;
  std::optional<std::vector<term>> items = elements_of(t);
  if (!items) fail(std::string(source) + ": expected a list of {Key, Value} tuples, got " + shown(t));
  // sys.config style: [{athanor, Proplist}]. No key is called athanor, so the first element
  // tells the two shapes apart.
  const atom section("athanor");
  if (!items->empty() && is_pair(items->front()) && items->front().element(0).is_atom(section)) {
    bool seen = false;
    for (const term& item : *items) {
      if (!is_pair(item) || !item.element(0).is_atom()) {
        fail(std::string(source) + ": expected an {Application, [{Key, Value}, ...]} section, got " + shown(item));
      }
      if (!item.element(0).is_atom(section)) {
        fail(std::string(source) + ": unknown section " + quoted(item.element(0).as_atom().name()) +
             " (only athanor's is read)");
      }
      if (seen) fail(std::string(source) + ": the athanor section is given twice");
      seen = true;
      apply_proplist(item.element(1), std::string(source) + ": athanor", out);
    }
    return out;
  }
  apply_proplist(t, source, out);
  return out;
}

node_settings read_settings_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path + ": cannot read: " + std::strerror(errno));
  std::string text;
  char buffer[16384];
  bool too_big = false;
  for (;;) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, f);
    text.append(buffer, n);
    if (text.size() > kMaxFileBytes) {
      too_big = true;
      break;
    }
    if (n < sizeof buffer) break;
  }
  // fread reports a directory (EISDIR) as an error, not as end of file.
  const bool failed = std::ferror(f) != 0;
  const int error = errno;
  std::fclose(f);
  if (failed) fail(path + ": cannot read: " + std::strerror(error));
  if (too_big) fail(path + ": larger than " + std::to_string(kMaxFileBytes) + " bytes: not a config file");
  return parse_settings(text, path);
}

std::optional<std::string> system_environment(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

node_settings settings_from_environment(const env_lookup& lookup) {
  node_settings out;
  for (const key_spec& k : kKeys) {
    const std::string name = env_name(k.key);
    std::optional<std::string> text = lookup(name);
    if (!text || text->empty()) continue;
    value v;
    if (!parse_text_value(k, *text, v)) fail(name + ": expected " + expectation(k, true) + ", got " + quoted(*text));
    k.set(out, v);
  }
  std::optional<std::string> path = lookup(std::string(kConfigEnv));
  if (path && !path->empty()) out.config_file = std::move(*path);
  return out;
}

node_settings settings_from_flags(int& argc, char** argv) {
  node_settings out;
  std::vector<char*> kept;
  if (argc > 0) kept.push_back(argv[0]);
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.substr(0, 2) != "--") {
      kept.push_back(argv[i]);
      continue;
    }
    const std::size_t eq = arg.find('=');
    const std::string_view flag = arg.substr(0, eq);
    const key_spec* k = nullptr;
    for (const key_spec& spec : kKeys) {
      if (flag_name(spec.key) == flag) k = &spec;
    }
    if (!k && flag != kConfigFlag) {
      kept.push_back(argv[i]);
      continue;
    }
    std::string_view text;
    if (eq != std::string_view::npos) {
      text = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      text = argv[++i];
    } else {
      fail(std::string(flag) + ": expected a value after it");
    }
    if (!k) {
      if (text.empty()) fail(std::string(flag) + ": expected a file path, got ''");
      out.config_file = std::string(text);
      continue;
    }
    value v;
    if (!parse_text_value(*k, text, v)) {
      fail(std::string(flag) + ": expected " + expectation(*k, true) + ", got " + quoted(text));
    }
    k->set(out, v);
  }
  for (; i < argc; ++i) kept.push_back(argv[i]);
  // Only now, so that argv is untouched when a flag was bad.
  for (std::size_t j = 0; j < kept.size(); ++j) argv[j] = kept[j];
  argc = int(kept.size());
  argv[argc] = nullptr;
  return out;
}

std::string node_settings_help() {
  // The variables are not on every line: with them, lines pass 100 columns.
  std::string out =
      "Node settings. Each flag --some-key is also the variable ATHANOR_SOME_KEY and the config file\n"
      "entry {some_key, Value}; flags win over variables, variables over the file.\n";
  auto line = [&out](std::string left, std::string_view help) {
    constexpr std::size_t kColumn = 32;
    left = "  " + left;
    left.append(left.size() < kColumn ? kColumn - left.size() : 1, ' ');
    out += left;
    out += help;
    out += '\n';
  };
  line(std::string(kConfigFlag) + " FILE", "read settings from FILE, in Erlang term syntax (ATHANOR_CONFIG)");
  for (const key_spec& k : kKeys) line(flag_name(k.key) + " " + std::string(k.metavar), k.help);
  return out;
}

node_settings resolve_settings(const node_settings& code, const node_settings& environment,
                               const node_settings& flags) {
  const std::optional<std::string>& path =
      flags.config_file ? flags.config_file : environment.config_file ? environment.config_file : code.config_file;
  node_settings file;
  if (path) {
    file = read_settings_file(*path);
    file.config_file = path;
  }
  return merge_settings(merge_settings(merge_settings(code, file), environment), flags);
}

node_settings load_settings(const node_settings& code, int& argc, char** argv, const env_lookup& lookup) {
  // The environment first: when it is bad, argv is left as it was.
  node_settings environment = settings_from_environment(lookup);
  node_settings flags = settings_from_flags(argc, argv);
  return resolve_settings(code, environment, flags);
}

runtime_config to_runtime_config(const node_settings& s, runtime_config base) {
  if (s.schedulers) base.schedulers = *s.schedulers;
  if (s.max_processes) base.max_processes = *s.max_processes;
  if (s.max_heap_bytes) base.max_heap_bytes = *s.max_heap_bytes;
  if (s.reductions_per_slice) base.reductions_per_slice = *s.reductions_per_slice;
  if (s.hog_threshold) base.hog_threshold = *s.hog_threshold;
  if (s.max_relief_threads) base.max_relief_threads = *s.max_relief_threads;
  if (s.dirty_cpu_threads) base.dirty_cpu_threads = *s.dirty_cpu_threads;
  if (s.dirty_io_threads) base.dirty_io_threads = *s.dirty_io_threads;
  if (s.io_uring) base.io_uring = *s.io_uring;
  return base;
}

}  // namespace athanor
