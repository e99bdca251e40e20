# Athanor's install rules, included at the end of CMakeLists.txt when ATHANOR_INSTALL is on (by
# default when Athanor is the top-level project). `cmake --install <build> --prefix <p>` installs:
#
#   <p>/include/athanor/...                  every public header, with the generated athanor/version.h
#   <p>/lib/libathanor_<part>.a              one static library per part
#   <p>/lib/cmake/athanor/athanorConfig.cmake  find_package(athanor) gives athanor::term, athanor::runtime,
#                                            athanor::otp, athanor::web and athanor::all
#   <p>/lib/pkgconfig/athanor.pc             pkg-config: athanor (everything) and athanor-<part>
#   <p>/share/doc/athanor/LICENSE, NOTICE
#
# scripts/package-test.sh installs to a temporary prefix and builds tests/package/consumer/ against it.
include(CMakePackageConfigHelpers)

set(ATHANOR_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/athanor)

# Both include/athanor/ trees (the sources' and the build's, which has version.h) go to one.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/athanor ${PROJECT_BINARY_DIR}/include/athanor
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/NOTICE DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(athanor_targets athanor_all)
foreach(part ${ATHANOR_PARTS})
  list(APPEND athanor_targets athanor_${part})
endforeach()
install(TARGETS ${athanor_targets} EXPORT athanorTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT athanorTargets NAMESPACE athanor:: DESTINATION ${ATHANOR_CMAKE_DIR} FILE athanorTargets.cmake)

# What the installed package must find before it defines its targets, and what each part's
# pkg-config file requires, are read from the parts' link interfaces, so that a dependency a
# src/<part>/part.cmake adds is installed right without a list here to keep in step:
#   ns::target, $<LINK_ONLY:ns::target>  find_dependency(ns): a CMake package's targets are named
#                                        after it (fmt::fmt, ZLIB::ZLIB, OpenSSL::SSL, spdlog::spdlog).
#                                        The parts are static libraries, so their PRIVATE
#                                        dependencies (LINK_ONLY) are linked by their users too.
#   PkgConfig::NAME                      pkg_check_modules(NAME IMPORTED_TARGET name-in-lower-case)
#   $<INSTALL_INTERFACE:athanor::uring>  liburing, found again with find_library (src/runtime/part.cmake)
#   $<BUILD_INTERFACE:...>               nothing: not part of the installed package (a header-only
#                                        library used by the sources only, such as nlohmann_json)
#   athanor::part                        the part, in this package
# A dependency whose pkg-config name is not its CMake name in lower case gets an entry here.
set(ATHANOR_PC_NAME_OpenSSL openssl)
set(ATHANOR_PC_NAME_ZLIB zlib)
set(ATHANOR_PC_NAME_uring liburing)

set(ATHANOR_CONFIG_DEPENDENCIES "")   # lines of athanorConfig.cmake, in link order
set(ATHANOR_CONFIG_USES_URING OFF)
foreach(part ${ATHANOR_PARTS})
  set(requires_${part} "")
  set(libs_${part} "")
  get_target_property(links athanor_${part} INTERFACE_LINK_LIBRARIES)
  if(NOT links)
    set(links "")
  endif()
  foreach(item ${links})
    if(item MATCHES "^\\$<LINK_ONLY:(.*)>$")
      set(item "${CMAKE_MATCH_1}")
    endif()
    if(item MATCHES "^\\$<BUILD_INTERFACE:")
      continue()
    elseif(item MATCHES "^(athanor::|athanor_)([a-z]+)$")
      list(APPEND requires_${part} athanor-${CMAKE_MATCH_2})
    elseif(item STREQUAL "$<INSTALL_INTERFACE:athanor::uring>")
      set(ATHANOR_CONFIG_USES_URING ON)
      list(APPEND requires_${part} ${ATHANOR_PC_NAME_uring})
    elseif(item MATCHES "^PkgConfig::([A-Za-z0-9_]+)$")
      string(TOLOWER "${CMAKE_MATCH_1}" module)
      string(APPEND ATHANOR_CONFIG_DEPENDENCIES "athanor_find_pkg_config(${CMAKE_MATCH_1} ${module})\n")
      list(APPEND requires_${part} ${module})
    elseif(item STREQUAL "Threads::Threads")
      string(APPEND ATHANOR_CONFIG_DEPENDENCIES "find_dependency(Threads)\n")
      list(APPEND libs_${part} -pthread)
    elseif(item MATCHES "^([A-Za-z0-9_]+)::[A-Za-z0-9_]+$")
      set(package "${CMAKE_MATCH_1}")
      string(APPEND ATHANOR_CONFIG_DEPENDENCIES "find_dependency(${package})\n")
      if(DEFINED ATHANOR_PC_NAME_${package})
        list(APPEND requires_${part} ${ATHANOR_PC_NAME_${package}})
      else()
        string(TOLOWER "${package}" module)
        list(APPEND requires_${part} ${module})
      endif()
    else()
      message(FATAL_ERROR "athanor_${part} links '${item}', which the installed package cannot find again: "
                          "link an imported target (ns::name) or say in cmake/AthanorPackage.cmake how to find it")
    endif()
  endforeach()
endforeach()
# Each dependency is found once, in the order the parts first need it.
string(REPLACE "\n" ";" lines "${ATHANOR_CONFIG_DEPENDENCIES}")
list(REMOVE_DUPLICATES lines)
list(REMOVE_ITEM lines "")
list(JOIN lines "\n" ATHANOR_CONFIG_DEPENDENCIES)

# The package accepts a request for the same MAJOR.MINOR and an older or equal PATCH
# (SameMinorVersion): before 1.0 a MINOR step may change the API (cmake/version.h.in), so
# find_package(athanor 0.1) must not take 0.2. At 1.0 this becomes SameMajorVersion.
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/athanorConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/package/athanorConfig.cmake
                              INSTALL_DESTINATION ${ATHANOR_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/package/athanorConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
# The package makes the same compiler check as this build (athanor_check_compiler()).
install(FILES ${PROJECT_BINARY_DIR}/package/athanorConfig.cmake ${PROJECT_BINARY_DIR}/package/athanorConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/AthanorCompiler.cmake
        DESTINATION ${ATHANOR_CMAKE_DIR})

# pkg-config files, one per part (athanor-term, athanor-runtime, ...) and athanor for all of them.
# The libraries are static, so what they link is in Requires and Libs, not in the .private
# fields: `pkg-config --libs athanor` is then a complete link line without --static. Paths are
# relative to the .pc file (${pcfiledir}), so the files are right wherever the prefix is moved.
foreach(dir INCLUDEDIR LIBDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(ATHANOR_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(ATHANOR_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(ATHANOR_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH to_prefix /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
  string(REGEX REPLACE "/$" "" to_prefix "${to_prefix}")
  set(ATHANOR_PC_PREFIX "\${pcfiledir}/${to_prefix}")
endif()
set(ATHANOR_PC_DESCRIPTION_term "Athanor terms: Erlang's data model, the External Term Format, JSON")
set(ATHANOR_PC_DESCRIPTION_runtime "Athanor runtime: lightweight processes, messages, links, monitors, timers, I/O")
set(ATHANOR_PC_DESCRIPTION_otp "Athanor OTP: gen_server, supervisors, tasks, agents, applications")
set(ATHANOR_PC_DESCRIPTION_dist "Athanor distribution: the Erlang distribution protocol, EPMD, clusters with Erlang/Elixir nodes")
set(ATHANOR_PC_DESCRIPTION_web "Athanor web: HTTP/1.1, WebSocket, Phoenix Channels, PubSub and Presence")
set(ATHANOR_PC_DESCRIPTION_live "Athanor live: LiveView for the official phoenix_live_view client")
set(all_requires "")
foreach(part ${ATHANOR_PARTS})
  set(ATHANOR_PC_NAME athanor-${part})
  if(DEFINED ATHANOR_PC_DESCRIPTION_${part})
    set(ATHANOR_PC_DESCRIPTION "${ATHANOR_PC_DESCRIPTION_${part}}")
  else()
    set(ATHANOR_PC_DESCRIPTION "Athanor's ${part} part")
  endif()
  list(REMOVE_DUPLICATES requires_${part})
  list(JOIN requires_${part} ", " ATHANOR_PC_REQUIRES)
  set(ATHANOR_PC_LIBS "")
  get_target_property(type athanor_${part} TYPE)
  if(type STREQUAL "STATIC_LIBRARY")
    set(ATHANOR_PC_LIBS "-L\${libdir} -lathanor_${part}")
  endif()
  list(REMOVE_DUPLICATES libs_${part})
  list(JOIN libs_${part} " " extra)
  string(STRIP "${ATHANOR_PC_LIBS} ${extra}" ATHANOR_PC_LIBS)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/athanor.pc.in ${PROJECT_BINARY_DIR}/package/athanor-${part}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/package/athanor-${part}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
  # Later parts first, so that pkg-config lists each library before the ones it needs.
  list(PREPEND all_requires athanor-${part})
endforeach()
set(ATHANOR_PC_NAME athanor)
set(ATHANOR_PC_DESCRIPTION "Athanor: Erlang/OTP-style lightweight processes for C++20 (all parts)")
list(JOIN all_requires ", " ATHANOR_PC_REQUIRES)
set(ATHANOR_PC_LIBS "")
configure_file(${PROJECT_SOURCE_DIR}/cmake/athanor.pc.in ${PROJECT_BINARY_DIR}/package/athanor.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/package/athanor.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
