// A user's Elixir shell talking to an Athanor node: a real `iex --sname ... --cookie ...` whose
// standard input is a FIFO the test types into, one line at a time, as a user would, against a real
// tools/athanor-node. Each answer is read from iex's own output: without a terminal iex echoes no
// input, so the answer to a line is printed right after the prompt that line was typed at,
// "iex(ex@host)3> {:echo, :hello}".
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;

#ifdef ATHANOR_NODE_BIN

bool have_iex() { return std::system("command -v iex >/dev/null 2>&1") == 0; }

constexpr const char* kNoIex = "iex is not installed (scripts/install-deps.sh --test installs elixir)";

// A running `iex --sname <name> --cookie <cookie>` with its standard input on a FIFO this object
// writes (the shared `child` of support/child_process.h leaves a child on the test's own standard
// input, hence the FIFO; like a pipe, it is not a terminal). Ends iex when it goes (end of input,
// then SIGKILL from `child` if it has not exited).
class iex_session {
 public:
  iex_session(const std::string& dir, const std::string& sname, const std::string& host, const std::string& cookie,
              const std::vector<std::string>& env)
      : node_(sname + "@" + host), fifo_(dir + "/iex-stdin") {
    if (::mkfifo(fifo_.c_str(), 0600) != 0) return;
    // Read and write: opening does not wait for iex to open the other end, and no SIGPIPE if iex
    // ends early. iex sees end of input when this descriptor closes (it is the only writer).
    in_ = ::open(fifo_.c_str(), O_RDWR | O_CLOEXEC);
    // --dot-iex "": no .iex.exs from the working directory or HOME; -start_epmd false: the EPMD is
    // athanor-node's (started first), and no epmd daemon outlives the test.
    iex_.emplace(std::vector<std::string>{"sh", "-c", "f=$1; shift; exec \"$@\" < \"$f\"", "sh", fifo_, "iex",
                                          "--sname", sname, "--cookie", cookie, "--dot-iex", "", "--erl",
                                          "-start_epmd false"},
                 env);
  }
  iex_session(const iex_session&) = delete;
  iex_session& operator=(const iex_session&) = delete;
  ~iex_session() { end_input(); }

  bool started() const { return in_ >= 0 && iex_ && iex_->started(); }

  // Types `line` (and Enter) and returns what iex printed for it: the rest of the line that
  // starts with a prompt of this node (the first line of a multi-line answer such as an
  // exception), or "(no answer)" if none came within `limit` (a failed comparison then shows
  // it). Lines without a prompt (the banner, the rest of an earlier multi-line answer) are
  // skipped. iex numbers its prompts by successful evaluations only, so the number is not checked.
  std::string type(const std::string& line, std::chrono::milliseconds limit = 30s) {
    const std::string typed = line + "\n";
    if (!started() || ::write(in_, typed.data(), typed.size()) != static_cast<ssize_t>(typed.size()))
      return "(could not type)";
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "(no answer)";
      std::optional<std::string> out = iex_->line(left);
      if (!out) return "(no answer)";
      if (std::optional<std::string> answer = after_prompt(*out)) return *answer;
    }
  }

  // Closes iex's standard input: iex reads end of input and exits.
  void end_input() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  // Everything iex printed so far.
  std::string output() const { return iex_ ? iex_->output() : std::string("(iex did not start)"); }
  int wait() { return iex_ ? iex_->wait(30s) : -1; }

 private:
  // "iex(<node>)<digits>> rest" -> rest.
  std::optional<std::string> after_prompt(const std::string& l) const {
    const std::string head = "iex(" + node_ + ")";
    std::size_t at = l.find(head);
    if (at == std::string::npos) return std::nullopt;
    std::size_t i = at + head.size();
    const std::size_t digits = i;
    while (i < l.size() && std::isdigit(static_cast<unsigned char>(l[i]))) ++i;
    if (i == digits || l.compare(i, 2, "> ") != 0) return std::nullopt;
    return l.substr(i + 2);
  }

  std::string node_;
  std::string fifo_;
  int in_ = -1;
  std::optional<child> iex_;
};

// athanor-node and an iex session on one test's own EPMD port and HOME.
struct cpp_node_and_iex {
  temp_dir home;
  std::vector<std::string> env = erl_env(home.path(), free_port());
  std::optional<child> cpp;
  std::string cpp_name;  // "cpp_..@host"
  std::optional<iex_session> iex;

  // Starts both; an empty string when all went well, else what went wrong.
  std::string start() {
    cpp.emplace(std::vector<std::string>{ATHANOR_NODE_BIN, "--sname", unique_name("cpp"), "--cookie", "iex-cookie"},
                env);
    std::optional<std::string> name = cpp->line();  // printed once the node is reachable
    if (!name || name->find('@') == std::string::npos) return "athanor-node printed no name: " + cpp->output();
    cpp_name = *name;
    iex.emplace(home.path(), unique_name("ex"), cpp_name.substr(cpp_name.find('@') + 1), "iex-cookie", env);
    if (!iex->started()) return "iex did not start";
    return "";
  }
  // ":\"cpp_1_0@vm\"", the node's name as an Elixir atom literal.
  std::string node_atom() const { return ":\"" + cpp_name + "\""; }
};

TEST(IexSession, AUserConnectsFromIexAndCallsTheAthanorNodesGenServer) {
  ATHANOR_REQUIRE_ERL();
  if (!have_iex()) GTEST_SKIP() << kNoIex;
  cpp_node_and_iex s;
  const std::string failed = s.start();
  ASSERT_EQ(failed, "");
  iex_session& iex = *s.iex;
  const std::string n = s.node_atom();
  // The first answer waits for iex to boot.
  EXPECT_EQ(iex.type("Node.connect(" + n + ")", 60s), "true") << iex.output();
  // Hidden (erlang-distribution.md §8.6): listed with :hidden, not among the visible nodes.
  EXPECT_EQ(iex.type("Node.list(:hidden)"), "[:" + s.cpp_name + "]") << iex.output();
  EXPECT_EQ(iex.type("Node.list()"), "[]") << iex.output();
  EXPECT_EQ(iex.type("Node.ping(" + n + ")"), ":pong") << iex.output();
  EXPECT_EQ(iex.type("GenServer.call({:cpp_echo, " + n + "}, :hello)"), "{:echo, :hello}") << iex.output();
  // Elixir terms that are not atoms survive the trip: a string (a binary), a map, a list.
  EXPECT_EQ(iex.type("GenServer.call({:cpp_echo, " + n + "}, %{name: \"Alice\", tags: [1, 2.5]})"),
            "{:echo, %{name: \"Alice\", tags: [1, 2.5]}}")
      << iex.output();
  // send/receive by hand, as in the shell: the reply names cpp_echo's pid on the Athanor node.
  const std::string sent = iex.type("send({:cpp_echo, " + n + "}, {self(), :by_hand})");
  EXPECT_TRUE(sent.starts_with("{#PID<") && sent.ends_with(", :by_hand}")) << iex.output();
  EXPECT_EQ(iex.type("receive do {:echo, :by_hand, p} -> node(p) after 10_000 -> :no_reply end"), ":" + s.cpp_name)
      << iex.output();
  // A name the Athanor node does not have: the call exits with noproc, as it would on a BEAM node.
  EXPECT_EQ(iex.type("try do GenServer.call({:nobody, " + n + "}, :hello) catch :exit, reason -> elem(reason, 0) end"),
            ":noproc")
      << iex.output();
  // End of input ends iex (as at the end of a piped script); it exits cleanly, with status 0.
  iex.end_input();
  EXPECT_EQ(iex.wait(), 0) << iex.output();
}

// athanor-node's registered `counter` gen_server (handle_call :get / {:add, n}) and its erpc
// function math_cpp:add/2, from iex.
TEST(IexSession, AUserDrivesTheAthanorNodesCounterAndCallsItsFunctionsWithErpc) {
  ATHANOR_REQUIRE_ERL();
  if (!have_iex()) GTEST_SKIP() << kNoIex;
  cpp_node_and_iex s;
  const std::string failed = s.start();
  ASSERT_EQ(failed, "");
  iex_session& iex = *s.iex;
  const std::string n = s.node_atom();
  ASSERT_EQ(iex.type("Node.connect(" + n + ")", 60s), "true") << iex.output();
  EXPECT_EQ(iex.type("GenServer.call({:counter, " + n + "}, :get)"), "0") << iex.output();
  EXPECT_EQ(iex.type("GenServer.call({:counter, " + n + "}, {:add, 5})"), "5") << iex.output();
  EXPECT_EQ(iex.type("GenServer.call({:counter, " + n + "}, :get)"), "5") << iex.output();
  EXPECT_EQ(iex.type(":erpc.call(" + n + ", :math_cpp, :add, [1, 2])"), "3") << iex.output();
  iex.end_input();
  EXPECT_EQ(iex.wait(), 0) << iex.output();
}

#endif  // ATHANOR_NODE_BIN

}  // namespace
}  // namespace athanor::dist::testing
