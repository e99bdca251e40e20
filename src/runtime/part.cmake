# The runtime's optional dependency: liburing, for attached sockets on io_uring (uring.cpp).
# Without it (or on a kernel that refuses the ring) those sockets use the epoll path.
find_library(ATHANOR_URING_LIBRARY uring)
find_path(ATHANOR_URING_INCLUDE liburing.h)
if(ATHANOR_URING_LIBRARY AND ATHANOR_URING_INCLUDE)
  target_compile_definitions(athanor_runtime PRIVATE ATHANOR_HAVE_URING)
  target_include_directories(athanor_runtime PRIVATE ${ATHANOR_URING_INCLUDE})
  # The installed package finds liburing again where it is installed: athanor::uring is made by
  # athanorConfig.cmake (cmake/athanorConfig.cmake.in), as the build tree's path may not exist there.
  target_link_libraries(athanor_runtime PUBLIC $<BUILD_INTERFACE:${ATHANOR_URING_LIBRARY}> $<INSTALL_INTERFACE:athanor::uring>)
else()
  message(STATUS "liburing not found: attached sockets use epoll only")
endif()

# The logger's file sink rotates through spdlog's rotating_file_sink, used header-only and
# privately (logger.cpp only): no spdlog header is in a public one, and BUILD_INTERFACE keeps it
# out of the installed package's link interface. It formats through the same external fmt.
find_package(spdlog REQUIRED)
target_link_libraries(athanor_runtime PRIVATE $<BUILD_INTERFACE:spdlog::spdlog_header_only>)
