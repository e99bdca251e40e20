// Cross-checks the ETF codec against a real Erlang node (erl on PATH; skipped without it).
//
// A corpus of tricky terms is encoded in C++ (minor_version 1 and 2) and written to a file.
// One `erl -noshell` run decodes every entry and checks that term_to_binary/1,2 of what it
// decoded gives back exactly our bytes, and that both encodings decode to the same term.
// It writes back its own term_to_binary(T) and term_to_binary(T, [compressed]), which
// C++ decodes and compares with the original term.
#include "athanor/term/etf.h"
#include "athanor/term/integer.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

namespace athanor {
namespace {

using namespace athanor::literals;

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string_view rest(path);
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const std::string dir(rest.substr(0, colon));
    if (!dir.empty() && ::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return false;
}

struct sample {
  term value;
  bool exact = true;  // false: erl's bytes may differ (maps of more than 32 keys)
};

std::vector<sample> corpus() {
  std::vector<sample> out;
  auto add = [&](term t, bool exact = true) { out.push_back({std::move(t), exact}); };
  using lim = std::numeric_limits<std::int64_t>;
  for (std::int64_t i : {std::int64_t(0), std::int64_t(1), std::int64_t(255), std::int64_t(256), std::int64_t(-1),
                         std::int64_t(-256), (std::int64_t(1) << 31) - 1, std::int64_t(1) << 31, -(std::int64_t(1) << 31),
                         -(std::int64_t(1) << 31) - 1, std::int64_t(1) << 40, -(std::int64_t(1) << 40),
                         (std::int64_t(1) << 56) - 1, std::int64_t(1) << 56, lim::max(), -lim::max(), lim::min()}) {
    add(i);
  }
  for (double d : {0.0, -0.0, 0.1, 1.5, -2.25, 1e300, -1e300, 1e-300, std::numeric_limits<double>::denorm_min(),
                   std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest()}) {
    add(d);
  }
  add("ok"_a);
  add(atom(""));
  add(atom("hello world"));
  add(atom("EXIT"));
  add(atom("\xC3\xBCn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9"));  // 'ünïcödé': Latin-1, so ATOM_EXT
  add(atom("\xCE\xB1\xCE\xB2\xCE\xB3"));                  // 'αβγ': UTF-8
  add(atom("\xF0\x9F\x98\x80 smile"));
  add(atom(std::string(255, 'x')));
  std::string latin;
  for (int i = 0; i < 127; ++i) latin += "\xC3\xA9";
  add(atom(latin + "e"));
  add(atom("nonode@nohost"));
  add("");
  add("abc");
  add(term::binary({0, 1, 2, 255}));
  add(term(std::string(1 << 20, '\x42')));  // 1 MB
  add(tuple());
  add(tuple("ok"_a, list({1, 2, 3}), "a", map({{"a"_a, 1}})));
  std::vector<term> seq;
  for (int i = 0; i < 300; ++i) seq.emplace_back(i * 1000);
  add(tuple(std::span<const term>(seq)));
  add(term::nil());
  add(list({1, 2, 3}));
  add(list({'a', 'b', 'c'}));
  add(list({256}));
  add(list({-1, 0}));
  add(list({1.0}));
  add(list({1, 2}, 3));
  add(cons("a"_a, "b"_a));
  add(cons(term::nil(), "x"_a));
  add(list({list({1}), list({}), list({2}, 3)}));
  add(list(std::vector<term>(65535, term(7))));
  add(list(std::vector<term>(65536, term(7))));
  add(list({1, 2, "x"_a}, "tail"));
  add(map({}));
  add(map({{1.5, "a"_a}, {2, "b"_a}, {"a"_a, "c"_a}, {tuple("x"_a), "d"_a}, {"b", "e"_a}, {list({1}), "f"_a},
           {term::nil(), 1}, {pid(0, 1, 0), 2}, {ref(0, 5), 3}, {-1, 4}, {1.0, 5}, {map({{1, 2}}), 6}}));
  std::vector<std::pair<term, term>> entries;
  for (int i = 0; i < 32; ++i) entries.emplace_back(i % 2 == 0 ? term(i) : term(atom(fmt::format("k{}", i))), i);
  add(map(entries));
  entries.emplace_back("k32"_a, 32);
  add(map(entries), false);  // 33 keys: a hash map in Erlang, written in its own order
  add(map({{"inner"_a, map({{"deeper"_a, map({{1, 2}})}})}}));
  add(pid(0, 5, 1));
  add(pid(0, 32767, 8191));
  add(pid(0, pid::kIndexMask, pid::kGenerationMask));
  add(ref(0, 1));
  add(ref(0, 0x123456789ABCDEFull));
  add(ref(0, ~std::uint64_t(0)));
  // Integers beyond 64 bits, both signs, up to LARGE_BIG_EXT.
  term big = integer_from_string("18446744073709551616");
  for (int i = 0; i < 5; ++i) {
    add(big);
    add(multiply(big, -1));
    add(athanor::add(big, -1));
    big = multiply(big, big);  // 2^128, 2^256, ... 2^2048 (LARGE_BIG_EXT)
  }
  add(integer_from_string("9223372036854775808"));
  add(integer_from_string("-9223372036854775809"));
  // Bitstrings, ports, exported funs, references beyond 64 bits.
  for (std::size_t n : {1, 3, 7, 9, 15, 17}) {
    std::vector<std::byte> b((n + 7) / 8, std::byte(0xA5));
    add(term::bitstring(b, n));
  }
  add(list({term::bitstring(std::vector<std::byte>{std::byte(0x80)}, 1), "x"}));
  add(term::export_fun("lists"_a, "map"_a, 2));
  add(term::export_fun(atom("a b"), atom("\xCE\xB1"), 255));
  add(port_id(0, 0));
  add(port_id(0, (1ull << 28) - 1));
  add(port_id(0, 1ull << 28));
  add(port_id(0, 0xFFFFFFFFull));
  add(port_id(0, 0x100000000ull));
  const std::uint32_t real[] = {171110, 374603777, 1623555385};
  add(ref::from_words(0, real));
  const std::uint32_t five[] = {1, 2, 3, 4, 5};
  add(ref::from_words(0, five));
  add(tuple(term(ref::from_words(0, real)), port_id(0, 9), term::export_fun("m"_a, "f"_a, 0)));
  term deep = "leaf"_a;
  for (int i = 0; i < 2000; ++i) deep = tuple(i, deep);
  add(deep);
  term heads = 1;
  for (int i = 0; i < 2000; ++i) heads = list({heads, i});
  add(heads);
  return out;
}

void put_u32(std::string& out, std::size_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(char(v >> shift & 0xFF));
}
void put_bytes(std::string& out, const std::vector<std::byte>& b) {
  put_u32(out, b.size());
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
}

// Reads the file erl wrote: per sample, a flags byte then two length-prefixed binaries.
struct erl_answer {
  int flags = 0;
  std::vector<std::byte> plain, compressed;
};

// The erl side. Input: per sample, <<Len:32, B1:Len/binary, Len2:32, B2:Len2/binary>>.
// Flags: 1 = term_to_binary(T) =:= B1, 2 = binary_to_term(B2) =:= T,
// 4 = term_to_binary(T, [{minor_version,2}]) =:= B2; 255 = binary_to_term failed.
constexpr const char* kErlScript = R"erl(
[In, Out] = init:get_plain_arguments(),
{ok, Data} = file:read_file(In),
Parse = fun P(<<L1:32, B1:L1/binary, L2:32, B2:L2/binary, Rest/binary>>, Acc) -> P(Rest, [{B1, B2} | Acc]);
            P(<<>>, Acc) -> lists:reverse(Acc) end,
Check = fun({B1, B2}) ->
  try
    T = binary_to_term(B1),
    F = (case term_to_binary(T) =:= B1 of true -> 1; false -> 0 end)
      bor (case binary_to_term(B2) =:= T of true -> 2; false -> 0 end)
      bor (case term_to_binary(T, [{minor_version, 2}]) =:= B2 of true -> 4; false -> 0 end),
    P1 = term_to_binary(T), C1 = term_to_binary(T, [compressed]),
    <<F:8, (byte_size(P1)):32, P1/binary, (byte_size(C1)):32, C1/binary>>
  catch C:R ->
    io:format("binary_to_term failed: ~p:~p~n", [C, R]),
    <<255:8, 0:32, 0:32>>
  end
end,
ok = file:write_file(Out, [Check(I) || I <- Parse(Data, [])]),
io:format("checked~n"),
halt(0).
)erl";

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

TEST(EtfErl, ErlangAgreesByteForByte) {
  if (!on_path("erl")) GTEST_SKIP() << "erl is not on PATH: the Erlang cross-check is skipped";
  const auto started = std::chrono::steady_clock::now();
  const std::vector<sample> samples = corpus();

  // Pids and refs are ours: a node name other than erl's own 'nonode@nohost', or erl would
  // take them for its own processes (and refuse IDs >= 2^15 or Serials >= 2^13).
  etf::encode_options v1;
  v1.context.node = atom("cpp@localhost");
  v1.context.creation = 0x5EED;
  etf::encode_options v2 = v1;
  v2.minor_version = 2;
  etf::decode_options dec;
  dec.context = v1.context;
  std::string input;
  std::vector<std::vector<std::byte>> ours;
  for (const sample& s : samples) {
    ours.push_back(etf::encode(s.value, v1));
    put_bytes(input, ours.back());
    put_bytes(input, etf::encode(s.value, v2));
  }
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("athanor-etf-erl-{}-{}", ::getpid(), started.time_since_epoch().count());
  std::filesystem::create_directories(dir);
  const auto in_path = dir / "in.bin", out_path = dir / "out.bin";
  {
    std::ofstream f(in_path, std::ios::binary);
    f.write(input.data(), std::streamsize(input.size()));
  }
  const std::string command = "erl -noshell -eval " + shell_quote(kErlScript) + " -extra " +
                              shell_quote(in_path.string()) + " " + shell_quote(out_path.string()) + " 2>&1";
  std::string output;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
    const int status = ::pclose(pipe);
    ASSERT_EQ(status, 0) << "erl failed:\n" << output;
  } else {
    FAIL() << "popen failed";
  }
  EXPECT_NE(output.find("checked"), std::string::npos) << output;

  std::ifstream f(out_path, std::ios::binary);
  const std::string answer((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);
  std::size_t pos = 0;
  auto get_u32 = [&]() -> std::size_t {
    if (answer.size() - pos < 4) throw std::runtime_error("short answer from erl");
    std::size_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(answer[pos++]);
    return v;
  };
  auto get_bytes = [&]() {
    const std::size_t n = get_u32();
    if (answer.size() - pos < n) throw std::runtime_error("short answer from erl");
    std::vector<std::byte> b(reinterpret_cast<const std::byte*>(answer.data() + pos),
                             reinterpret_cast<const std::byte*>(answer.data() + pos + n));
    pos += n;
    return b;
  };
  for (std::size_t i = 0; i < samples.size(); ++i) {
    ASSERT_LT(pos, answer.size()) << "erl answered only " << i << " of " << samples.size() << " samples\n" << output;
    const int flags = static_cast<unsigned char>(answer[pos++]);
    const auto plain = get_bytes();
    const auto compressed = get_bytes();
    const std::string what = fmt::format("sample {}: {:.200}", i, samples[i].value.to_string());
    ASSERT_NE(flags, 255) << what << "\n" << output;
    EXPECT_TRUE(flags & 2) << what << ": our minor_version 1 and 2 encodings decode differently in erl";
    if (samples[i].exact) {
      EXPECT_TRUE(flags & 1) << what << ": erl's term_to_binary/1 differs from ours";
      EXPECT_TRUE(flags & 4) << what << ": erl's minor_version 2 bytes differ from ours";
      EXPECT_EQ(plain, ours[i]) << what;
    } else {
      EXPECT_NE(plain, ours[i]) << what << ": expected erl to write this map in its own order";
    }
    EXPECT_EQ(etf::decode(plain, dec), samples[i].value) << what << " (erl's bytes)";
    EXPECT_EQ(etf::decode(compressed, dec), samples[i].value) << what << " (erl's compressed bytes)";
  }
  EXPECT_EQ(pos, answer.size());
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_LT(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count(), 20) << "the erl cross-check is slow";
}

// The other direction, for what only a real node makes: erl writes term_to_binary(T) and
// io_lib:format("~w", [T]) for funs (exported and local, with captured variables), ports,
// its own refs and pids, pids, refs and ports of another node, bignums and bitstrings. C++
// must decode each, re-encode it to the same bytes and (for this node's terms) print what
// erl printed.
constexpr const char* kErlMakesScript = R"erl(
[Out] = init:get_plain_arguments(),
Node = <<100, 10:16, "other@host">>,
X = 5,
Local = [1 bsl 64, -(1 bsl 64), 1 bsl 1000, -(1 bsl 2100), 1 bsl 63, -(1 bsl 63) - 1,
         <<1:1>>, <<5, 1:3>>, <<0:7>>, <<255, 255, 1:5>>,
         fun lists:map/2, fun erlang:abs/1, fun() -> ok end, fun(Y) -> X + Y end,
         hd(erlang:ports()), make_ref(), alias(), self(),
         {ok, [fun lists:map/2, <<1:1>>, 1 bsl 70], #{a => hd(erlang:ports()), b => fun(Z) -> {Z, X} end}}],
Remote = [binary_to_term(<<131, 88, Node/binary, 7:32, 1:32, 3:32>>),
          binary_to_term(<<131, 90, 3:16, Node/binary, 3:32, 171110:32, 374603777:32, 1623555385:32>>),
          binary_to_term(<<131, 90, 5:16, Node/binary, 3:32, 1:32, 2:32, 3:32, 4:32, 5:32>>),
          binary_to_term(<<131, 89, Node/binary, 42:32, 3:32>>),
          binary_to_term(<<131, 120, Node/binary, 7:64, 3:32>>),
          binary_to_term(<<131, 120, Node/binary, (1 bsl 40):64, 3:32>>)],
Enc = fun(T, Flag) ->
  B = term_to_binary(T), W = unicode:characters_to_binary(io_lib:format("~w", [T])),
  <<Flag:8, (byte_size(B)):32, B/binary, (byte_size(W)):32, W/binary>>
end,
ok = file:write_file(Out, [[Enc(T, 1) || T <- Local], [Enc(T, 0) || T <- Remote]]),
io:format("written~n"),
halt(0).
)erl";

TEST(EtfErl, TermsOnlyErlangMakesComeBackByteForByte) {
  if (!on_path("erl")) GTEST_SKIP() << "erl is not on PATH: the Erlang cross-check is skipped";
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("athanor-etf-erl-made-{}-{}", ::getpid(),
                               std::chrono::steady_clock::now().time_since_epoch().count());
  std::filesystem::create_directories(dir);
  const auto out_path = dir / "out.bin";
  const std::string command =
      "erl -noshell -eval " + shell_quote(kErlMakesScript) + " -extra " + shell_quote(out_path.string()) + " 2>&1";
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  ASSERT_EQ(::pclose(pipe), 0) << "erl failed:\n" << output;
  std::ifstream f(out_path, std::ios::binary);
  const std::string answer((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);

  // erl's own node is ours (node 0); other@host (creation 3) is our node 7.
  etf::decode_options dec;
  dec.context.node_number = [](const etf::node_identity& id) -> std::optional<std::uint32_t> {
    if (id.name == atom("other@host") && id.creation == 3) return 7;
    return std::nullopt;
  };
  etf::encode_options enc;
  enc.context.node_name = [](std::uint32_t node) -> std::optional<etf::node_identity> {
    if (node == 7) return etf::node_identity{atom("other@host"), 3};
    return std::nullopt;
  };
  std::size_t pos = 0, count = 0;
  auto get = [&]() {
    std::size_t len = 0;
    for (int i = 0; i < 4; ++i) len = len << 8 | static_cast<unsigned char>(answer.at(pos++));
    std::string s = answer.substr(pos, len);
    pos += len;
    return s;
  };
  std::set<term_kind> kinds;
  while (pos < answer.size()) {
    const bool local = answer[pos++] == 1;
    const std::string encoded = get(), printed = get();
    const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(encoded.data()), encoded.size());
    term t;
    try {
      t = etf::decode(in, dec);
    } catch (const etf::etf_error& e) {
      ADD_FAILURE() << "cannot decode erl's " << printed << ": " << e.what();
      continue;
    }
    kinds.insert(t.kind());
    const std::vector<std::byte> again = etf::encode(t, enc);
    EXPECT_TRUE(std::equal(again.begin(), again.end(), in.begin(), in.end())) << printed << " re-encodes differently";
    EXPECT_EQ(etf::decode(again, dec), t) << printed;
    if (local) {
      EXPECT_EQ(t.to_string_w(), printed);
    }
    ++count;
  }
  EXPECT_EQ(count, 25u) << output;
  for (term_kind k : {term_kind::bignum, term_kind::bitstring, term_kind::fun, term_kind::port, term_kind::reference,
                      term_kind::pid, term_kind::tuple}) {
    EXPECT_TRUE(kinds.count(k)) << "no " << kind_name(k) << " came from erl";
  }
}

}  // namespace
}  // namespace athanor
