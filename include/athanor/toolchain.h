// The compiler check for code that includes Athanor's headers without Athanor's CMake package
// (which makes the same check at configure time: cmake/AthanorCompiler.cmake).
//
// GCC miscompiles the coroutine code Athanor is written for: g++ 12 destroys a braced aggregate
// temporary or a capturing lambda inside a `co_await` expression twice (`co_await call<cache>(
// "cache", lookup{"k"})` is a double free), and g++ 15/16 skip the destructor of
// `auto [a, b] = co_await x;` in loops (GCC PR 124584). Athanor's compiler is clang-19.
// tests/toolchain/coroutine_patterns_test.cpp holds the patterns; GCC stays refused until it
// passes them under ASan. Define ATHANOR_ALLOW_UNSAFE_COMPILER to build with GCC anyway.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && !defined(ATHANOR_ALLOW_UNSAFE_COMPILER)
#error "Athanor: GCC miscompiles C++20 coroutines as Athanor code uses them (g++ 12 destroys a braced temporary or capturing lambda inside co_await twice; g++ 15/16: GCC PR 124584). Compile with clang++-19 (apt-get install clang-19 libclang-rt-19-dev), or define ATHANOR_ALLOW_UNSAFE_COMPILER to build anyway at your own risk."
#endif
