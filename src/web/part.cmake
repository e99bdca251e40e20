# The web part's extra dependencies: OpenSSL (TLS, the WebSocket accept key) and zlib (permessage-deflate).
find_package(OpenSSL REQUIRED)
target_link_libraries(athanor_web PUBLIC OpenSSL::SSL OpenSSL::Crypto ZLIB::ZLIB)
