// Athanor: Erlang/OTP-style lightweight processes for C++20. Include this for everything in the
// term, runtime and otp parts (link athanor::otp). The web layer is <athanor/web/web.h> (link
// athanor::web); `x | f` pipes are opted into with `using namespace athanor::pipes;`.
#pragma once

#include "athanor/toolchain.h"

#include "athanor/term/atom.h"
#include "athanor/term/convert.h"
#include "athanor/term/etf.h"
#include "athanor/term/integer.h"
#include "athanor/term/json.h"
#include "athanor/term/match.h"
#include "athanor/term/parse.h"
#include "athanor/term/pid.h"
#include "athanor/term/pipe.h"
#include "athanor/term/port.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

#include "athanor/runtime/alias.h"
#include "athanor/runtime/config.h"
#include "athanor/runtime/dirty.h"
#include "athanor/runtime/io.h"
#include "athanor/runtime/proc.h"
#include "athanor/runtime/process.h"
#include "athanor/runtime/remote.h"
#include "athanor/runtime/runtime.h"
#include "athanor/runtime/timer.h"

#include "athanor/otp/agent.h"
#include "athanor/otp/application.h"
#include "athanor/otp/child_spec.h"
#include "athanor/otp/describe.h"
#include "athanor/otp/dynamic_supervisor.h"
#include "athanor/otp/gen_server.h"
#include "athanor/otp/logger.h"
#include "athanor/otp/start.h"
#include "athanor/otp/supervisor.h"
#include "athanor/otp/task.h"
