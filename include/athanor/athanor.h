// Athanor: Erlang/OTP-style lightweight processes for C++20. Include this for everything.
#pragma once

#include "athanor/runtime/alias.h"
#include "athanor/runtime/dirty.h"
#include "athanor/runtime/io.h"
#include "athanor/runtime/proc.h"
#include "athanor/runtime/process.h"
#include "athanor/runtime/runtime.h"
#include "athanor/runtime/timer.h"
#include "athanor/term/atom.h"
#include "athanor/term/etf.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"
