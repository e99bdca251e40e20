// The logger moved to the runtime part (the runtime logs its own error reports); this header
// keeps `#include "athanor/otp/logger.h"` working.
#pragma once

#include "athanor/runtime/logger.h"
