// LiveView workloads (issue 15).
//
// live_diff [--n ROWS]: a table of ROWS rows (default 1000; each row a keyed entry with three
// cells), one row's value changed per iteration: the time to render the view and diff it against
// the last render (what each event or handle_info costs the view's process; target <= 1 ms for
// 1,000 rows), p50/p99/max over 2,000 iterations, and the bytes of the diff on the wire against
// the bytes of the whole table's HTML (what re-sending the page would cost).
#include <algorithm>
#include <string>
#include <vector>

#include "athanor/live/rendered.h"
#include "athanor/term/json.h"
#include "bench.h"

namespace athanor::bench {
namespace {

struct row {
  std::string id, name;
  long value;
};

live::rendered render_table(const std::vector<row>& rows) {
  static const live::html_template table("<table><tbody>{}</tbody></table><p>{} rows</p>");
  static const live::html_template tr("<tr id=\"row-{}\"><td>{}</td><td class=\"v\">{}</td></tr>");
  live::comprehension body(tr);
  for (const row& r : rows) body.add(tr(r.id, r.name, r.value), r.id);
  return table(std::move(body), rows.size());
}

void live_diff(const options& o) {
  const long n = o.n > 0 ? o.n : 1000;
  std::vector<row> rows;
  rows.reserve(std::size_t(n));
  for (long i = 0; i < n; ++i) rows.push_back(row{std::to_string(i), "item " + std::to_string(i), i});
  live::rendered last = render_table(rows);
  const std::size_t full_html = live::to_html(last).size();
  const std::size_t full_wire = json::encode(live::diff(nullptr, last)).size();
  constexpr int kIterations = 2000;
  std::vector<double> ns;
  ns.reserve(kIterations);
  std::size_t diff_bytes = 0;
  for (int i = 0; i < kIterations; ++i) {
    rows[std::size_t((i * 7919) % n)].value += 1;
    const auto t0 = clock_type::now();
    live::rendered now = render_table(rows);
    const term d = live::diff(&last, now);
    ns.push_back(ns_since(t0));
    diff_bytes += json::encode(d).size();
    last = std::move(now);
  }
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) { return ns[std::min(ns.size() - 1, std::size_t(p * double(ns.size())))] / 1e3; };
  print_line(fmt::format(
      R"({{"bench":"live_diff","system":"athanor","rows":{},"iterations":{},"render_diff_us_p50":{:.1f},)"
      R"("render_diff_us_p99":{:.1f},"render_diff_us_max":{:.1f},"diff_bytes":{:.1f},"full_html_bytes":{},)"
      R"("full_join_bytes":{},"relief_threads":0}})",
      n, kIterations, pct(0.5), pct(0.99), ns.back() / 1e3, double(diff_bytes) / kIterations, full_html, full_wire));
}

}  // namespace

ATHANOR_BENCH_WORKLOAD("live_diff", live_diff);

}  // namespace athanor::bench
