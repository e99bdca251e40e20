// The logger moved to the runtime part, and its test helpers with it.
#pragma once

#include "../runtime/log_capture.h"
