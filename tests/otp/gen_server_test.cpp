// gen_server: one test per rule of OTP's gen_server and proc_lib documentation.
#include <atomic>
#include <string>
#include <vector>

#include "../runtime/test_util.h"
#include "athanor/otp/gen_server.h"
#include "log_capture.h"

namespace my_app {
struct ping {};
}  // namespace my_app

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct get {};
struct inc {
  int by = 1;
};
struct boom {};
struct stop_with {
  term reason;
};
struct slow {
  std::chrono::milliseconds for_;
};
struct tick {};

struct counter : gen_server<counter> {
  int n = 0;
  explicit counter(int start = 0) : n(start) {}
  int handle_call(get) { return n; }
  int handle_call(inc i) { return n += i.by; }
  void handle_call(boom) { throw std::runtime_error("boom"); }
  std::string handle_call(stop_with s, const from&) {
    stop(s.reason);
    return "stopping";
  }
  task<void> handle_call(slow s) {
    co_await this_process().sleep(s.for_);
  }
  void handle_cast(inc i) { n += i.by; }
  void handle_cast(boom) { throw std::runtime_error("cast boom"); }
  term describe_state() const { return tuple("counter"_a, n); }
};

TEST_F(RuntimeTest, StartLinkReturnsAfterInitAndCallGetsTheHandlersReturnValue) {
  run([](process&) -> proc {
    start_result r = co_await start_link<counter>(41);
    EXPECT_TRUE(r.ok());
    pid c = r.value();
    int v = co_await call<counter>(c, inc{1});
    EXPECT_EQ(v, 42);
    cast<counter>(c, inc{8});
    int w = co_await call<counter>(c, get{});
    EXPECT_EQ(w, 50);  // a cast before a call from the same client is handled first (per-pair order)
    co_await stop(c);
  });
}

TEST_F(RuntimeTest, NamedServerIsReachableByNameAndTheNameIsUnique) {
  run([](process&) -> proc {
    start_result r = co_await start_link<counter>(server_options{.name = "named_counter"_a}, 7);
    EXPECT_EQ(whereis("named_counter"_a), r.pid());
    int v = co_await call<counter>("named_counter", get{});
    EXPECT_EQ(v, 7);
    // gen_server:start_link({local, Name}, ...) with a taken name: {error, {already_started, Pid}}.
    start_result again = co_await start_link<counter>(server_options{.name = "named_counter"_a}, 1);
    EXPECT_FALSE(again.ok());
    EXPECT_EQ(again.error(), tuple("already_started"_a, r.pid()));
    co_await stop("named_counter");
  });
}

struct failing_init : gen_server<failing_init> {
  int mode;
  explicit failing_init(int m) : mode(m) {
    if (m == 0) throw std::runtime_error("constructor failed");
  }
  init_result init() {
    if (mode == 1) return init_result::stop("bad_config"_a);
    if (mode == 2) return init_result::ignore();
    if (mode == 3) exit("init_exit"_a);
    return init_result::ok();
  }
};

TEST_F(RuntimeTest, InitMayFailOrIgnore_StartReturnsErrorOrIgnore) {
  run([](process& self) -> proc {
    self.trap_exit(true);  // the failing server is linked: its exit signal must not end the test
    start_result a = co_await start_link<failing_init>(0);
    EXPECT_EQ(a.to_term(), tuple("error"_a, tuple("exception"_a, "constructor failed")));
    start_result b = co_await start_link<failing_init>(1);
    EXPECT_EQ(b.to_term(), tuple("error"_a, "bad_config"_a));
    start_result c = co_await start_link<failing_init>(2);
    EXPECT_TRUE(c.ignored());
    EXPECT_EQ(c.to_term(), term("ignore"_a));
    start_result d = co_await start_link<failing_init>(3);
    EXPECT_EQ(d.error(), term("init_exit"_a));
    // OTP 26: a failed start leaves no 'EXIT' message behind in a caller that traps exits.
    EXPECT_EQ(self.message_queue_len(), 0u);
    EXPECT_THROW(d.value(), start_error);
    start_result ok = co_await start_link<failing_init>(4);
    EXPECT_TRUE(ok.ok());
    co_await stop(ok.pid());
  });
}

TEST_F(RuntimeTest, InitFailureKillsANonTrappingLinkedCaller_AsInOtp) {
  run([](process& self) -> proc {
    auto [caller, m] = spawn_monitor([](process&) -> proc {
      start_result r = co_await start_link<failing_init>(1);
      (void)r;
      co_await this_process().receive<tick>();  // never reached: the link ends this process
    });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, caller);
    EXPECT_EQ(d.reason, term("bad_config"_a));
  });
}

TEST_F(RuntimeTest, CallToANonexistentServerRaisesNoproc) {
  run([](process& self) -> proc {
    bool raised = false;
    try {
      co_await call<counter>("nobody_here", get{});
    } catch (const call_error& e) {
      raised = true;
      EXPECT_EQ(e.why, term("noproc"_a));
      // The exit reason an uncaught failure gives: {noproc, {gen_server, call, [Server, Timeout]}}.
      EXPECT_EQ(e.reason, tuple("noproc"_a, tuple("gen_server"_a, "call"_a, list({term("nobody_here"_a), term(5000)}))));
    }
    EXPECT_TRUE(raised);
    auto [dead, m] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    bool raised_pid = false;
    try {
      co_await call<counter>(dead, get{});
    } catch (const call_error& e) {
      raised_pid = true;
      EXPECT_EQ(e.why, term("noproc"_a));
    }
    EXPECT_TRUE(raised_pid);
    EXPECT_EQ(self.message_queue_len(), 0u);  // no DOWN left behind
  });
}

TEST_F(RuntimeTest, ServerDyingDuringACallRaisesItsReasonInTheCaller) {
  run([](process& self) -> proc {
    self.trap_exit(true);
    logs_silenced quiet;
    pid c = (co_await start_link<counter>()).value();
    term why;
    try {
      co_await call<counter>(c, boom{});
    } catch (const call_error& e) {
      why = e.why;
    }
    EXPECT_EQ(why, tuple("exception"_a, "boom"));
    exit_signal x = co_await self.receive<exit_signal>();
    EXPECT_EQ(x.from, c);
    EXPECT_EQ(x.reason, tuple("exception"_a, "boom"));
  });
}

TEST_F(RuntimeTest, CallTimeoutRaisesTimeoutAndTheLateReplyNeverArrives) {
  run([](process& self) -> proc {
    pid c = (co_await start_link<counter>()).value();
    term why;
    try {
      co_await call<counter>(c, slow{50ms}, 5ms);
    } catch (const call_error& e) {
      why = e.why;
    }
    EXPECT_EQ(why, term("timeout"_a));
    // The server is still alive and answers the next call after the slow one; by then the
    // late reply has been sent and must have been dropped (the alias was deactivated).
    int v = co_await call<counter>(c, get{});
    EXPECT_EQ(v, 0);
    EXPECT_EQ(self.message_queue_len(), 0u);
    co_await stop(c);
  });
}

TEST_F(RuntimeTest, UncaughtCallErrorEndsTheCallerWithGenServerCallReason) {
  run([](process& self) -> proc {
    auto [caller, m] = spawn_monitor([](process&) -> proc { co_await call<counter>("not_registered", get{}, 100ms); });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, caller);
    EXPECT_EQ(d.reason, tuple("noproc"_a, tuple("gen_server"_a, "call"_a, list({term("not_registered"_a), term(100)}))));
  });
}

TEST_F(RuntimeTest, StopFromACallbackRepliesFirstThenTerminates) {
  run([](process& self) -> proc {
    pid c = (co_await start<counter>()).value();
    ref m = monitor(c);
    std::string answer = co_await call<counter>(c, stop_with{"done"_a});
    EXPECT_EQ(answer, "stopping");
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.monitor, m);
    EXPECT_EQ(d.reason, term("done"_a));
  });
}

struct recorder : gen_server<recorder> {
  std::shared_ptr<std::vector<std::string>> log;
  pid watcher;  // told with a tick when the idle timeout fires, if set
  explicit recorder(std::shared_ptr<std::vector<std::string>> l, pid w = {}) : log(std::move(l)), watcher(w) {}
  void init() {
    log->push_back("init");
    continue_with(tick{});
  }
  void handle_continue(tick) { log->push_back("continue"); }
  std::vector<std::string> handle_call(get) { return *log; }
  void handle_info(term t) { log->push_back("info " + t.to_string()); }
  void handle_info(exit_signal x) { log->push_back("exit " + x.reason.to_string()); }
  void handle_cast(inc) { timeout_after(10ms); }
  void handle_timeout() {
    log->push_back("timeout");
    if (watcher) send(watcher, tick{});
  }
  void terminate(term reason) { log->push_back("terminate " + reason.to_string()); }
};

TEST_F(RuntimeTest, ContinueRunsBeforeAnyMessageAndInfoGoesToHandleInfo) {
  run([](process&) -> proc {
    auto log = std::make_shared<std::vector<std::string>>();
    pid r = (co_await start_link<recorder>(log)).value();
    send(r, term(tuple("hello"_a, 1)));
    std::vector<std::string> seen = co_await call<recorder>(r, get{});
    EXPECT_EQ(seen, (std::vector<std::string>{"init", "continue", "info {hello,1}"}));
    co_await stop(r, "shutdown"_a);
    EXPECT_EQ(log->back(), "terminate shutdown");
  });
}

TEST_F(RuntimeTest, IdleTimeoutFiresWhenNothingArrives) {
  run([](process& self) -> proc {
    auto log = std::make_shared<std::vector<std::string>>();
    pid r = (co_await start_link<recorder>(log, self.self())).value();
    cast<recorder>(r, inc{});
    // The server tells us when its timeout fired; the log is read only through a call
    // (it belongs to the server's thread).
    co_await self.receive<tick>();
    std::vector<std::string> seen = co_await call<recorder>(r, get{});
    EXPECT_NE(std::find(seen.begin(), seen.end(), "timeout"), seen.end());
    co_await stop(r);
  });
}

TEST_F(RuntimeTest, TrappingServerRunsTerminateWhenItsParentExits) {
  run([](process& self) -> proc {
    auto log = std::make_shared<std::vector<std::string>>();
    pid me = self.self();
    auto [parent, m] = spawn_monitor([log, me](process& p) -> proc {
      pid r = (co_await start_link<recorder>(server_options{.name = "rec"_a, .trap_exit = true}, log)).value();
      send(me, r);
      co_await p.receive<tick>();
    });
    // Once the parent has told us its server, watch the server and end the parent.
    pid r = co_await self.receive<pid>();
    EXPECT_EQ(whereis("rec"_a), r);
    ref rm = monitor(r);
    exit(parent, "parent_gone"_a);
    down d1 = co_await self.receive<down>();
    down d2 = co_await self.receive<down>();
    term server_reason = d1.monitor == rm ? d1.reason : d2.reason;
    EXPECT_EQ(server_reason, term("parent_gone"_a));
    EXPECT_EQ(log->back(), "terminate parent_gone");
  });
}

TEST_F(RuntimeTest, ExitSignalFromANonParentGoesToHandleInfo) {
  run([](process&) -> proc {
    auto log = std::make_shared<std::vector<std::string>>();
    pid r = (co_await start_link<recorder>(server_options{.trap_exit = true}, log)).value();
    exit(r, "just_a_note"_a);
    std::vector<std::string> seen = co_await call<recorder>(r, get{});
    EXPECT_EQ(seen.back(), "exit just_a_note");
    co_await stop(r);
  });
}

struct deferring : gen_server<deferring> {
  std::optional<from> waiting;
  deferred<int> handle_call(get, const from& f) {
    waiting = f;
    return {};
  }
  void handle_cast(inc i) {
    if (waiting) reply(*waiting, i.by);
    waiting.reset();
  }
};

TEST_F(RuntimeTest, DeferredReplyIsSentLaterWithReply) {
  run([](process&) -> proc {
    pid d = (co_await start_link<deferring>()).value();
    pid me = self();
    spawn([d](process&) -> proc {
      co_await this_process().sleep(5ms);
      cast<deferring>(d, inc{99});
    });
    int v = co_await call<deferring>(d, get{});
    EXPECT_EQ(v, 99);
    (void)me;
    co_await stop(d);
  });
}

// A server whose handler is a coroutine that calls another server.
struct front : gen_server<front> {
  pid backend;
  explicit front(pid b) : backend(b) {}
  task<int> handle_call(get) {
    int v = co_await call<counter>(backend, get{});
    co_return v * 2;
  }
};

TEST_F(RuntimeTest, CoroutineHandlerMayCallAnotherServer) {
  run([](process&) -> proc {
    pid back = (co_await start_link<counter>(21)).value();
    pid f = (co_await start_link<front>(back)).value();
    int v = co_await call<front>(f, get{});
    EXPECT_EQ(v, 42);
    co_await stop(f);
    co_await stop(back);
  });
}

TEST_F(RuntimeTest, CrashInACallbackRunsTerminateAndLogsOneCrashReport) {
  run([](process& self) -> proc {
    log_capture logs;
    auto log = std::make_shared<std::vector<std::string>>();
    self.trap_exit(true);
    pid c = (co_await start_link<counter>(5)).value();
    cast<counter>(c, boom{});
    exit_signal x = co_await self.receive<exit_signal>();
    EXPECT_EQ(x.reason, tuple("exception"_a, "cast boom"));
    auto reports = logs.with_domain("crash_report");
    EXPECT_EQ(reports.size(), 1u);
    if (reports.size() == 1) {
      EXPECT_EQ(reports[0].get("pid"), term(c));
      EXPECT_EQ(reports[0].get("reason"), tuple("exception"_a, "cast boom"));
      EXPECT_EQ(reports[0].get("state"), tuple("counter"_a, 5));
      EXPECT_EQ(reports[0].get("last_message").element(0), term("$gen_cast"_a));
    }
  });
}

TEST_F(RuntimeTest, NormalStopLogsNoCrashReport) {
  run([](process&) -> proc {
    log_capture logs;
    pid c = (co_await start_link<counter>()).value();
    co_await stop(c, "shutdown"_a);
    pid d = (co_await start_link<counter>()).value();
    co_await stop(d, tuple("shutdown"_a, "bye"_a));
    EXPECT_TRUE(logs.with_domain("crash_report").empty());
  });
}

TEST_F(RuntimeTest, StopOfAMissingServerRaisesNoproc) {
  run([](process&) -> proc {
    term why;
    try {
      co_await stop("missing_server");
    } catch (const call_error& e) {
      why = e.why;
    }
    EXPECT_EQ(why, term("noproc"_a));
  });
}

struct upgradable : gen_server<upgradable> {
  int version = 1;
  term seen_extra;
  void code_change(term old_vsn, term extra) {
    version = int(old_vsn.as_int()) + 1;
    seen_extra = extra;
  }
  int handle_call(get) { return version; }
};

TEST_F(RuntimeTest, CodeChangeRunsBetweenMessages) {
  run([](process&) -> proc {
    pid u = (co_await start_link<upgradable>()).value();
    co_await code_change(u, term(1), "extra"_a);
    int v = co_await call<upgradable>(u, get{});
    EXPECT_EQ(v, 2);
    co_await code_change(u, term(2), "extra"_a);
    int w = co_await call<upgradable>(u, get{});
    EXPECT_EQ(w, 3);
    co_await stop(u);
  });
}

TEST_F(RuntimeTest, UnexpectedMessageIsLoggedAndDropped) {
  run([](process&) -> proc {
    log_capture logs;
    pid c = (co_await start_link<counter>(3)).value();
    send(c, tick{});
    int v = co_await call<counter>(c, get{});
    EXPECT_EQ(v, 3);
    EXPECT_EQ(logs.at_level(log_level::warning).size(), 1u);
    auto info = co_await process_info_async(c);
    EXPECT_EQ(info ? info->message_queue_len : 99u, 0u);
    co_await stop(c);
  });
}

// OTP's "Undefined handle_info in Module / Unhandled message: Msg" warning names the message; a
// C++ message is named by its (demangled) type, so the log says what nobody handles.
TEST_F(RuntimeTest, UnexpectedMessageReportNamesTheMessagesCppType) {
  run([](process&) -> proc {
    log_capture logs;
    pid c = (co_await start_link<counter>(3)).value();
    send(c, my_app::ping{});
    send(c, std::string("a string"));
    co_await call<counter>(c, get{});
    auto reports = logs.with_domain("unexpected_message");
    EXPECT_EQ(reports.size(), 2u);
    if (reports.size() == 2) {
      EXPECT_EQ(reports[0].level, log_level::warning);
      EXPECT_EQ(reports[0].part, "otp");
      EXPECT_EQ(reports[0].process, c);
      EXPECT_EQ(reports[0].get("message_type"), term(std::string_view("my_app::ping")));
      EXPECT_NE(reports[0].text.find("of type my_app::ping"), std::string::npos) << reports[0].text;
      EXPECT_NE(reports[1].text.find("std::"), std::string::npos) << reports[1].text;  // std::__cxx11::basic_string<...>
    }
    co_await stop(c);
  });
}

// OTP's rule: a gen_server's crash is its crash report ("Generic server terminating"); the
// process then ends with exit(Reason), which the BEAM does not report again as "Error in process".
TEST_F(RuntimeTest, AGenServerCrashIsReportedOnceAsACrashReportNotAlsoAsAProcessError) {
  run([](process& self) -> proc {
    log_capture logs;
    self.trap_exit(true);
    pid c = (co_await start_link<counter>(5)).value();
    ref m = monitor(c);
    cast<counter>(c, boom{});
    co_await self.receive(on<down>([m](const down& d) { return d.monitor == m; }, [](down&) {}));
    EXPECT_EQ(logs.with_domain("crash_report").size(), 1u);
    EXPECT_TRUE(logs.with_domain("process_error").empty());
    EXPECT_EQ(logs.at_level(log_level::error).size(), 1u);
  });
}

TEST_F(RuntimeTest, ServerRefPrintsAsErlangDoes) {
  EXPECT_EQ(server_ref("x"_a).to_term(), term("x"_a));
  EXPECT_EQ(server_ref("x"_a, "node@host"_a).to_term(), tuple("x"_a, "node@host"_a));
  EXPECT_EQ(server_ref("x"_a, "node@host"_a).resolve(), pid());
  EXPECT_EQ(server_ref(pid()).resolve(), pid());
}

}  // namespace
}  // namespace athanor::testing
