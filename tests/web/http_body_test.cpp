// Request bodies read on demand, what an idle connection keeps, and refusals when the server is
// out of connections or descriptors: the resource lifecycle a hostile or careless client tests
// (issue 12, bugs 1 and 2, weak spot 5).
#include <fcntl.h>
#include <malloc.h>

#include <fstream>

#include "athanor/runtime/pool.h"
#include "web_test_util.h"


namespace athanor::web::testing {
namespace {

// Bytes handed out and not had back, all threads: malloc's (heap and mapped) and the runtime
// pool's (process blocks, coroutine frames, messages).
std::size_t heap_in_use() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd + std::size_t(athanor::detail::pool_bytes_in_use());
}

// This OS process's resident set, in bytes.
std::size_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * std::size_t(::sysconf(_SC_PAGESIZE));
}

std::string post(std::string_view path, std::string_view body, std::string_view extra = "") {
  std::string r = "POST " + std::string(path) + " HTTP/1.1\r\nHost: x\r\ncontent-length: " + std::to_string(body.size()) +
                  "\r\n" + std::string(extra) + "\r\n";
  r += body;
  return r;
}

// Reads exactly one response (head and content-length body) from `c`, leaving a pipelined next
// one unread; "" if none arrived in time.
std::string read_response(raw_client& c, std::chrono::milliseconds timeout = 5000ms) {
  std::string got;
  while (got.size() < 4 || got.compare(got.size() - 4, 4, "\r\n\r\n") != 0) {
    std::string byte = c.read_n(1, timeout);
    if (byte.empty()) return {};
    got += byte;
  }
  std::size_t cl = got.find("content-length: ");
  std::size_t len = cl != std::string::npos ? std::stoul(got.substr(cl + 16)) : 0;
  if (len > 0) got += c.read_n(len, timeout);
  return got;
}

struct part_stats {
  std::size_t total = 0;
  std::size_t parts = 0;
  std::size_t largest = 0;
};

router body_router() {
  router r;
  r.get("/hello/:name", [](conn& c) { return c.text(200, "Hello, " + c.param("name")); });
  // A plain handler: its body is read before it runs.
  r.post("/size", [](conn& c) { return c.text(200, std::to_string(c.body().size())); });
  r.post("/form", [](conn& c) { return c.text(200, c.param("a") + "|" + c.param("b")); });
  // Async handlers read (or not) themselves.
  r.post("/read", [](conn& c) -> task<void> {
    std::string_view b = co_await c.read_body();
    std::string_view again = co_await c.read_body();  // the same bytes, not read twice
    c.text(200, std::string(b) + "|" + std::to_string(again.size()) + "|" + std::to_string(c.body().size()));
  });
  r.post("/stream", [](conn& c) -> task<void> {
    part_stats s;
    while (std::optional<std::string> p = co_await c.read_body_part(4096)) {
      s.total += p->size();
      s.largest = std::max(s.largest, p->size());
      ++s.parts;
    }
    c.text(200, std::to_string(s.total) + " " + std::to_string(s.parts) + " " + std::to_string(s.largest));
  });
  r.post("/ignore", [](conn& c) -> task<void> {
    c.text(200, c.has_body() ? "ignored a body" : "no body");
    co_return;
  });
  r.post("/peek", [](conn& c) -> task<void> {
    c.text(200, c.body());  // a handler that forgot read_body(): a clear error, not an empty body
    co_return;
  });
  r.post("/catch", [](conn& c) -> task<void> {
    try {
      (void)co_await c.read_body();
      c.text(200, "read");
    } catch (const body_error& e) {
      c.text(422, "caught " + std::to_string(e.status()));
    }
  });
  return r;
}

class HttpBodyTest : public WebTest {};

TEST_F(HttpBodyTest, ARouteThatDoesNotReadTheBodyAnswersBeforeItArrives) {
  server_config cfg;
  cfg.request_timeout = 60s;  // before, the answer came only when the whole body had (or at 408)
  start(body_router(), cfg);
  for (std::string_view path : {"/nowhere", "/ignore"}) {
    raw_client c(port());
    c.send("POST " + std::string(path) + " HTTP/1.1\r\nHost: x\r\ncontent-length: 8000000\r\n\r\n");
    std::string got = read_response(c);
    ASSERT_FALSE(got.empty()) << path << ": no answer while the body was still to come";
    EXPECT_EQ(got.rfind(path == "/nowhere" ? "HTTP/1.1 404" : "HTTP/1.1 200", 0), 0u) << got;
    // 8 MB unread is too much to drop: the connection closes after the answer.
    EXPECT_NE(got.find("connection: close"), std::string::npos) << got;
  }
}

TEST_F(HttpBodyTest, AShortUnreadBodyIsDroppedAndTheConnectionGoesOn) {
  start(body_router());
  raw_client c(port());
  c.send(post("/ignore", std::string(1000, 'x')) + "GET /hello/next HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string first = read_response(c);
  EXPECT_EQ(first.rfind("HTTP/1.1 200", 0), 0u) << first;
  EXPECT_NE(first.find("ignored a body"), std::string::npos);
  EXPECT_EQ(first.find("connection: close"), std::string::npos) << first;
  std::string second = read_response(c);
  EXPECT_NE(second.find("Hello, next"), std::string::npos) << second;
}

TEST_F(HttpBodyTest, PlainAndAsyncHandlersGetTheWholeBody) {
  start(body_router());
  raw_client c(port());
  c.send(post("/size", std::string(300000, 'b')));
  EXPECT_NE(read_response(c).find("\r\n\r\n300000"), std::string::npos);
  c.send(post("/read", "hello body"));
  EXPECT_NE(read_response(c).find("\r\n\r\nhello body|10|10"), std::string::npos);
  c.send(post("/form", "a=1&b=two+words", "content-type: application/x-www-form-urlencoded\r\n"));
  EXPECT_NE(read_response(c).find("\r\n\r\n1|two words"), std::string::npos);
  // A chunked body, and one pipelined with the next request in the same write.
  c.send("POST /read HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" +
         post("/size", "12345"));
  EXPECT_NE(read_response(c).find("\r\n\r\nabcde|5|5"), std::string::npos);
  EXPECT_NE(read_response(c).find("\r\n\r\n5"), std::string::npos);
}

TEST_F(HttpBodyTest, AStreamingHandlerHoldsOnePartAtATime) {
  start(body_router());
  raw_client c(port());
  const std::size_t size = 3 << 20;
  c.send(post("/stream", std::string(size, 's')));
  std::string got = read_response(c);
  std::size_t total = 0, parts = 0, largest = 0;
  ASSERT_EQ(std::sscanf(got.c_str() + got.find("\r\n\r\n") + 4, "%zu %zu %zu", &total, &parts, &largest), 3) << got;
  EXPECT_EQ(total, size);
  EXPECT_LE(largest, 4096u);
  EXPECT_GE(parts, size / 4096);
  // Chunked, with chunks larger than a part.
  std::string chunked = "POST /stream HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n";
  for (int i = 0; i < 8; ++i) chunked += "2710\r\n" + std::string(10000, 'c') + "\r\n";
  chunked += "0\r\n\r\n";
  c.send(chunked);
  got = read_response(c);
  ASSERT_EQ(std::sscanf(got.c_str() + got.find("\r\n\r\n") + 4, "%zu %zu %zu", &total, &parts, &largest), 3) << got;
  EXPECT_EQ(total, 80000u);
  EXPECT_LE(largest, 4096u);
}

TEST_F(HttpBodyTest, BodyErrorsGetTheirStatusAndAHandlerMayCatchThem) {
  server_config cfg;
  cfg.max_body = 1000;
  start(body_router(), cfg);
  {
    raw_client c(port());
    c.send("POST /read HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
    EXPECT_EQ(c.read_all().rfind("HTTP/1.1 400", 0), 0u);
  }
  {
    raw_client c(port());  // chunked, so the size is known only while reading
    c.send("POST /size HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n7d0\r\n" + std::string(2000, 'x') + "\r\n0\r\n\r\n");
    EXPECT_EQ(c.read_all().rfind("HTTP/1.1 413", 0), 0u);
  }
  {
    raw_client c(port());
    c.send("POST /catch HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n7d0\r\n" + std::string(2000, 'x') + "\r\n0\r\n\r\n");
    std::string got = c.read_all();
    EXPECT_EQ(got.rfind("HTTP/1.1 422", 0), 0u) << got;
    EXPECT_NE(got.find("caught 413"), std::string::npos) << got;
  }
  {
    raw_client c(port());
    c.send(post("/peek", "abc"));
    EXPECT_EQ(read_response(c).rfind("HTTP/1.1 500", 0), 0u);  // body() before read_body() is a handler bug
  }
}

TEST_F(HttpBodyTest, NoContinueIsSentForABodyNobodyReads) {
  start(body_router());
  raw_client c(port());
  c.send("POST /ignore HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n");
  std::string got = read_response(c);
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;  // the final answer, no "100 Continue" first
  EXPECT_NE(got.find("connection: close"), std::string::npos) << got;  // the body never came
  raw_client d(port());
  d.send("POST /read HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n");
  std::string cont;
  ASSERT_TRUE(d.read_until(cont, "\r\n\r\n"));
  EXPECT_EQ(cont, "HTTP/1.1 100 Continue\r\n\r\n");
  d.send("fives");
  EXPECT_NE(read_response(d).find("fives|5|5"), std::string::npos);
}

// Bug 1: a keep-alive connection kept the capacity of its largest request for its whole life
// (40 connections that each sent one 8 MiB body pinned 383 MB).
TEST_F(HttpBodyTest, AnIdleConnectionGivesBackWhatItsLargestRequestTook) {
#ifdef ATHANOR_SANITIZED
  GTEST_SKIP() << "sanitizers keep freed memory in quarantine and count their own: measured in the plain build";
#endif
  start(body_router());
  constexpr int kConnections = 24;
  const std::string upload = post("/size", std::string(8 << 20, 'u'));
  // Warm up: the first request of a server allocates what every later one reuses. (Kept open:
  // a connection ending would free memory while the next ones are measured.)
  raw_client warm_up(port());
  warm_up.send(post("/size", std::string(8 << 20, 'w')));
  ASSERT_FALSE(read_response(warm_up).empty());
  warm_up.send("GET /hello/warm HTTP/1.1\r\nHost: x\r\n\r\n");  // after the answer: see below
  ASSERT_FALSE(read_response(warm_up).empty());
  // Opens kConnections connections, each sending `first` (if any) and then a small request; once
  // that is answered the connection has been idle since `first`, so it holds what it holds idle.
  // Returns the bytes the server's heap grew by, per connection.
  std::vector<std::unique_ptr<raw_client>> clients;
  clients.reserve(2 * kConnections);
  auto idle_bytes_per_connection = [&](const std::string* first) -> std::size_t {
    const std::size_t before = heap_in_use();
    for (int i = 0; i < kConnections; ++i) {
      clients.push_back(std::make_unique<raw_client>(port()));
      raw_client& c = *clients.back();
      if (first) {
        EXPECT_TRUE(c.send(*first));
        EXPECT_NE(read_response(c).find("\r\n\r\n8388608"), std::string::npos);
      }
      c.send("GET /hello/idle HTTP/1.1\r\nHost: x\r\n\r\n");
      EXPECT_NE(read_response(c).find("Hello, idle"), std::string::npos);
    }
    const std::size_t after = heap_in_use();
    return (after > before ? after - before : 0) / kConnections;
  };
  const std::size_t small_only = idle_bytes_per_connection(nullptr);
  const std::size_t rss_before = resident_bytes();
  const std::size_t after_upload = idle_bytes_per_connection(&upload);
  const std::size_t rss_after = resident_bytes();
  const std::size_t client_objects = sizeof(raw_client) + 32;  // this test's own, counted too
  EXPECT_LT(small_only, 2048u + client_objects) << "an idle connection's footprint";
  EXPECT_LT(after_upload, small_only + 512) << "bytes held by each idle connection after an 8 MiB upload";
  // And the memory went back to the operating system, not just to malloc's free lists.
  EXPECT_LT(rss_after, rss_before + (24u << 20)) << "resident set grew from " << (rss_before >> 20) << " MiB to "
                                                 << (rss_after >> 20) << " MiB";
  std::printf("idle connection: %zu bytes (%zu after an 8 MiB upload); resident set %zu -> %zu MiB\n", small_only,
              after_upload, rss_before >> 20, rss_after >> 20);
}

// A refusal lingers so that a client still sending its request reads the 503, not a reset.
TEST_F(HttpBodyTest, ARefusedClientStillSendingItsBodyReadsThe503) {
  server_config cfg;
  cfg.max_connections = 1;
  start(body_router(), cfg);
  raw_client held(port());
  held.send("GET /hello/held HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NE(read_response(held).find("Hello, held"), std::string::npos);
  raw_client c(port());
  ASSERT_TRUE(c.ok());
  // Larger than what the two sockets' buffers hold: without lingering the server closes with this
  // unread, the kernel resets the connection and the send fails.
  EXPECT_TRUE(c.send(post("/size", std::string(4 << 20, 'r')))) << "the refused client's upload was reset";
  std::string got = c.read_all();
  EXPECT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
  EXPECT_GE(srv_.refused(), 1u);
}

#ifdef ATHANOR_HELLO_BIN
// Bug 2: out of descriptors, one acceptor closed the spare, another acceptor's accept took the
// freed slot, and the spare was gone for good: from then on every new client hung in the backlog
// without an answer. Here eight acceptors race over a server that can hold only a few dozen
// descriptors, with more scheduler threads than cores so that an acceptor is often preempted in
// the middle; every client of every round must get an answer, 200 or 503. (Before the fix: no
// answer in three runs of five.)
TEST(HttpRefusal, EveryClientIsAnsweredWhenManyAcceptorsRunOutOfDescriptors) {
  hello_process hello("--schedulers 4 --acceptors 8", "ulimit -n 64 &&");
  ASSERT_NE(hello.port(), 0) << "athanor-hello did not start";
  std::vector<std::unique_ptr<raw_client>> held;  // served connections stay open: the server stays full
  int served = 0, refused = 0;
  for (int round = 0; round < 8; ++round) {
    std::vector<std::unique_ptr<raw_client>> batch;
    for (int i = 0; i < 32; ++i) {
      batch.push_back(std::make_unique<raw_client>(hello.port()));
      ASSERT_TRUE(batch.back()->ok());
    }
    for (auto& c : batch) c->send("GET /hello/r HTTP/1.1\r\nHost: x\r\n\r\n");
    for (std::size_t i = 0; i < batch.size(); ++i) {
      std::string got = read_response(*batch[i], 10000ms);
      ASSERT_FALSE(got.empty()) << "round " << round << ", client " << i
                                << ": no answer (the server lost its spare descriptor)";
      if (got.rfind("HTTP/1.1 200", 0) == 0) {
        ++served;
        held.push_back(std::move(batch[i]));
      } else {
        EXPECT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
        EXPECT_TRUE(batch[i]->closed_within(5000ms)) << "a refusal closes";
        batch[i].reset();  // as a client does after "connection: close"
        ++refused;
      }
    }
  }
  EXPECT_GT(served, 0);
  EXPECT_GT(refused, 128) << "the server should have run out of descriptors early on";
}
#endif

}  // namespace
}  // namespace athanor::web::testing
