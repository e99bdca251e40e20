# Athanor's compiler: clang-19, chosen because it compiles the natural coroutine style correctly.
#
# GCC miscompiles coroutine code that users write without thinking about it:
#   * g++ 12 destroys a braced aggregate temporary, or a capturing lambda, inside a `co_await`
#     expression twice: `co_await call<cache>("cache", lookup{"k"})` is a double free;
#   * g++ 15 and 16 skip or double-run the destructor of `auto [a, b] = co_await x;` in loops
#     (GCC PR 124584).
# tests/toolchain/coroutine_patterns_test.cpp holds these patterns; GCC stays refused until that
# test passes with it under ASan. This file is used twice: before project() to pick clang-19 when
# no compiler is named, and after it (and from the installed athanorConfig.cmake) to refuse a
# known-bad compiler unless ATHANOR_ALLOW_UNSAFE_COMPILER is on.

# Before project(): when the user named no C++ compiler (no -DCMAKE_CXX_COMPILER, no $CXX, no
# toolchain file), use clang++-19 if it is installed. A compiler the user names is respected,
# and then checked by athanor_check_compiler().
macro(athanor_pick_compiler)
  if(NOT DEFINED CMAKE_CXX_COMPILER AND NOT DEFINED ENV{CXX} AND NOT DEFINED CMAKE_TOOLCHAIN_FILE)
    find_program(ATHANOR_CLANGXX NAMES clang++-19 DOC "clang-19, Athanor's compiler")
    if(ATHANOR_CLANGXX)
      set(CMAKE_CXX_COMPILER "${ATHANOR_CLANGXX}" CACHE FILEPATH "C++ compiler (chosen by Athanor)")
    endif()
  endif()
endmacro()

# After project() (or in a consumer, after its own project()): refuses a compiler known to
# miscompile the coroutine patterns above, with a message that names the bug and the fix. With
# ATHANOR_ALLOW_UNSAFE_COMPILER on it warns instead; the caller then defines the macro of the same
# name for the code that includes Athanor's headers, so that their #error stands aside too.
function(athanor_check_compiler)
  set(id "${CMAKE_CXX_COMPILER_ID}")
  set(version "${CMAKE_CXX_COMPILER_VERSION}")
  if(id STREQUAL "GNU")
    string(CONCAT problem
           "GCC ${version} is known to miscompile C++20 coroutine code that Athanor's users write: g++ 12 "
           "destroys a braced aggregate temporary or a capturing lambda inside a co_await expression twice "
           "(co_await call<cache>(\"cache\", lookup{\"k\"}) is a double free), and g++ 15/16 skip the "
           "destructor of `auto [a, b] = co_await x;` in loops (GCC PR 124584).")
    string(CONCAT fix
           "Use clang-19: `apt-get install clang-19 libclang-rt-19-dev` (Athanor's scripts/install-deps.sh does "
           "it), then configure in a fresh build directory without naming a compiler, or with "
           "-DCMAKE_CXX_COMPILER=clang++-19. To build with this compiler anyway, at your own risk, configure with "
           "-DATHANOR_ALLOW_UNSAFE_COMPILER=ON (code built without CMake: define ATHANOR_ALLOW_UNSAFE_COMPILER).")
    if(ATHANOR_ALLOW_UNSAFE_COMPILER)
      message(WARNING "Athanor: ${problem}\nATHANOR_ALLOW_UNSAFE_COMPILER is on: building anyway.")
    else()
      message(FATAL_ERROR "Athanor: ${problem}\n${fix}")
    endif()
  elseif(id MATCHES "Clang" AND version VERSION_LESS 19)
    message(WARNING "Athanor is tested with clang 19; clang ${version} is not (its coroutine fixes differ).")
  endif()
endfunction()
