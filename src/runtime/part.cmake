# The runtime's optional dependency: liburing, for attached sockets on io_uring (uring.cpp).
# Without it (or on a kernel that refuses the ring) those sockets use the epoll path.
find_library(ATHANOR_URING_LIBRARY uring)
find_path(ATHANOR_URING_INCLUDE liburing.h)
if(ATHANOR_URING_LIBRARY AND ATHANOR_URING_INCLUDE)
  target_compile_definitions(athanor_runtime PRIVATE ATHANOR_HAVE_URING)
  target_include_directories(athanor_runtime PRIVATE ${ATHANOR_URING_INCLUDE})
  target_link_libraries(athanor_runtime PUBLIC ${ATHANOR_URING_LIBRARY})
else()
  message(STATUS "liburing not found: attached sockets use epoll only")
endif()
