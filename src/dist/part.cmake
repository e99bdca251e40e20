# The distribution part's extra dependencies: OpenSSL's libcrypto (the handshake's MD5 digest,
# random challenges, constant-time comparison) and libssl (TLS distribution).
find_package(OpenSSL REQUIRED)
get_target_property(dist_type athanor_dist TYPE)
if(dist_type STREQUAL "INTERFACE_LIBRARY")
  target_link_libraries(athanor_dist INTERFACE OpenSSL::SSL OpenSSL::Crypto)
else()
  target_link_libraries(athanor_dist PUBLIC OpenSSL::SSL OpenSSL::Crypto)
endif()
