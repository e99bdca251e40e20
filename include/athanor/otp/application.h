// athanor::application: a supervision tree started and stopped as a unit, and the main() of a
// service (Erlang's application master, for one application). run() is called once, from main();
// stop() and block_signals() may be called from any thread.
//
//   int main() {
//     athanor::application app({.name = "demo", .start = [] { return athanor::dynamic_supervisor::start_link(); }});
//     return app.run();   // until SIGTERM or SIGINT (or app.stop()); then stops the tree
//   }
//
// Semantics:
//  * run() blocks SIGTERM and SIGINT in the calling thread, creates the runtime (unless one
//    exists: then it uses it), starts the tree from a process that traps exits (the start
//    function must start the top supervisor linked to its caller, as any child_spec start
//    function), and waits for SIGTERM, SIGINT or stop().
//  * Then it stops the tree as OTP does: exit(Top, shutdown), and waits until the top has ended;
//    supervisors stop their children (a static supervisor in reverse start order) and every
//    gen_server that traps exits runs terminate. It logs "application <name> stopped" (notice)
//    and returns 0.
//  * It returns 1 (after logging an error) if the tree could not start, or if the top supervisor
//    ended by itself with an abnormal reason (it gave up after too many restarts, say); 0 if it
//    ended by itself normally.
//  * Signals: a SIGTERM sent to the OS process goes to any thread that does not block it, and
//    its default action ends the process at once. So SIGTERM and SIGINT must be blocked in every
//    thread: run() blocks them in its thread *before* it creates the runtime, whose threads
//    inherit the mask. A program that creates threads (or the runtime) before run() must call
//    application::block_signals() first, before creating any thread. run() reads the signals
//    through a signalfd and restores the calling thread's mask before it returns.
#pragma once

#include <memory>
#include <string>

#include "athanor/otp/child_spec.h"
#include "athanor/runtime/runtime.h"

namespace athanor {

// What an application is: its name (for logs) and how its tree starts.
struct application_options {
  std::string name = "app";
  start_function start;                // starts the top supervisor, linked to the caller
  runtime_config runtime{};            // for the runtime run() creates when none exists
};

// A top supervisor run as a unit. run() once; stop() from anywhere. Thread-safe.
class application {
 public:
  explicit application(application_options opts);
  ~application();
  application(const application&) = delete;
  application& operator=(const application&) = delete;

  // Blocks SIGTERM and SIGINT in the calling thread (threads it creates later inherit this).
  // Call it first in main() if threads are created before run(). Safe to call more than once.
  static void block_signals();

  // Starts the tree and serves until SIGTERM, SIGINT or stop(); then stops the tree. Returns 0
  // after a clean stop (or a normal end of the top), 1 if the tree could not start or its top
  // ended abnormally by itself. Call from a thread that is not a scheduler (main()). Throws
  // std::system_error if the signalfd or eventfd cannot be created, std::logic_error if called
  // twice.
  int run();

  // Asks run() to stop the tree; returns at once. Callable from any thread, before or during
  // run() (before: run() stops the tree right after starting it), and from a signal handler.
  void stop() noexcept;

  struct shared_state;

 private:
  std::shared_ptr<shared_state> st_;
};

}  // namespace athanor
