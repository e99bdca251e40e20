// The term part's workload: term_codec, External Term Format encode and decode throughput.
// The same workload exists in Erlang (bench/erlang/term_codec.erl); bench/compare.sh runs both.
//
// The message mix, identical in both (message i of n, built once before timing):
//   i % 5 in {0, 1}: a Phoenix channel broadcast
//       {broadcast, <<"room:lobby">>, <<"new_msg">>,
//        #{<<"body">> => <<"message number I from the benchmark">>, <<"user">> => <<"user_I">>,
//          <<"ts">> => 1700000000000 + I, <<"ref">> => I}}
//   i % 5 == 2: a gen_server call   {'$gen_call', {Pid, Ref}, {get_user, I, [name, email, roles]}}
//   i % 5 == 3: a presence diff
//       #{joins => #{<<"user_I">> => #{metas => [#{online_at => 1700000000 + I,
//                                                 phx_ref => <<"F1a2b3c4">>, status => away}]}},
//         leaves => #{}}
//   i % 5 == 4: metrics            [{cpu, 0.73}, {mem, 1048576 + I}, {reqs, [1..10]}, {lat, 12.5}]
// so binaries (short and medium), small and large integers, atoms, tuples, lists, maps, a few
// floats and a pid/ref pair. Each message is encoded with etf::encode (a new buffer per message,
// as term_to_binary makes a new binary) and decoded from its own bytes, n messages × reps.
//
//   athanor-bench term_codec [--n 10000] [--reps 100]
// prints {"bench":"term_codec","system":"athanor","n":...,"encode_mb_per_s":...,...}.
#include <vector>

#include "athanor/term/etf.h"
#include "bench.h"

using namespace athanor;
using namespace athanor::bench;

namespace {

term message(long i) {
  static const atom broadcast("broadcast"), gen_call("$gen_call"), get_user("get_user"), name("name"),
      email("email"), roles("roles"), joins("joins"), leaves("leaves"), metas("metas"), online_at("online_at"),
      phx_ref("phx_ref"), status("status"), away("away"), cpu("cpu"), mem("mem"), reqs("reqs"), lat("lat");
  switch (i % 5) {
    case 0:
    case 1:
      return tuple(broadcast, "room:lobby", "new_msg",
                   map({{"body", fmt::format("message number {} from the benchmark", i)},
                        {"user", fmt::format("user_{}", i)},
                        {"ts", 1700000000000 + i},
                        {"ref", i}}));
    case 2:
      return tuple(gen_call, tuple(pid(0, std::uint32_t(100 + i % 1000), 0), make_ref()),
                   tuple(get_user, i, list({name, email, roles})));
    case 3:
      return map({{joins, map({{fmt::format("user_{}", i),
                                 map({{metas, list({map({{online_at, 1700000000 + i},
                                                         {phx_ref, "F1a2b3c4"},
                                                         {status, away}})})}})}})},
                  {leaves, map({})}});
    default:
      return list({tuple(cpu, 0.73), tuple(mem, 1048576 + i), tuple(reqs, list({1, 2, 3, 4, 5, 6, 7, 8, 9, 10})),
                   tuple(lat, 12.5)});
  }
}

void term_codec(const options& o) {
  const long n = o.n > 0 ? o.n : 10'000;
  const long reps = o.get("reps", 100);
  std::vector<term> messages;
  messages.reserve(std::size_t(n));
  for (long i = 0; i < n; ++i) messages.push_back(message(i));
  std::vector<std::vector<std::byte>> encoded(messages.size());
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    encoded[i] = etf::encode(messages[i]);
    bytes += encoded[i].size();
  }

  std::size_t check = 0;  // results are used, so nothing is optimised away
  auto t0 = clock_type::now();
  for (long r = 0; r < reps; ++r) {
    for (const term& m : messages) check += etf::encode(m).size();
  }
  const double encode_ns = ns_since(t0);
  t0 = clock_type::now();
  for (long r = 0; r < reps; ++r) {
    for (const auto& b : encoded) check += std::size_t(etf::decode(b).kind());
  }
  const double decode_ns = ns_since(t0);
  if (check == 0) std::fprintf(stderr, "impossible\n");

  const double total_bytes = double(bytes) * double(reps), total_terms = double(n) * double(reps);
  print_line(fmt::format(
      R"({{"bench":"term_codec","system":"athanor","n":{},"reps":{},"schedulers":1,"bytes_per_term":{:.1f},)"
      R"("encode_mb_per_s":{:.1f},"decode_mb_per_s":{:.1f},"encode_terms_per_s":{:.0f},"decode_terms_per_s":{:.0f},)"
      R"("relief_threads":0}})",
      n, reps, double(bytes) / double(n), total_bytes / encode_ns * 1e3, total_bytes / decode_ns * 1e3,
      total_terms / encode_ns * 1e9, total_terms / decode_ns * 1e9));
}

}  // namespace

ATHANOR_BENCH_WORKLOAD("term_codec", term_codec);
