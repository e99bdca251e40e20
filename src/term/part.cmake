# Extra dependencies of the term part (included with athanor_term defined).
#
# GMP for integers beyond 64 bits: exact comparison with floats (mpz_cmp_d), printing and
# arithmetic are subtle to get right and fast, and Debian ships it (libgmp-dev).
find_package(PkgConfig REQUIRED)
pkg_check_modules(GMP REQUIRED IMPORTED_TARGET gmp)
# nlohmann/json (header-only) for athanor::json, used by the sources only: $<BUILD_INTERFACE:>
# keeps it out of the installed package (a static library's PRIVATE dependencies are otherwise
# exported for its users to link, and its users would have to find it).
find_package(nlohmann_json 3 REQUIRED)
target_link_libraries(athanor_term PUBLIC PkgConfig::GMP PRIVATE $<BUILD_INTERFACE:nlohmann_json::nlohmann_json>)

# Property tests (tests/term/*_property_test.cpp) use rapidcheck; term_tests is defined after
# the parts, so its link is added once the top-level directory has been processed.
if(ATHANOR_BUILD_TESTS)
  find_package(rapidcheck CONFIG REQUIRED)
  function(athanor_term_link_test_deps)
    if(TARGET term_tests)
      target_link_libraries(term_tests PRIVATE rapidcheck_gtest)
    endif()
  endfunction()
  cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL athanor_term_link_test_deps)
endif()

# libstdc++ 12's std::stable_sort (map construction in term.cpp) calls its own deprecated
# get_temporary_buffer, which clang reports at our instantiation: the call is the library's.
set_source_files_properties(${PROJECT_SOURCE_DIR}/src/term/term.cpp PROPERTIES COMPILE_OPTIONS -Wno-deprecated-declarations)
