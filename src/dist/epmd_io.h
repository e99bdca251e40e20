// Socket helpers shared by the EPMD client and server (internal): every wait has a deadline, so
// neither side can be held forever by a peer that stops sending or reading. Each runs in the
// calling process and suspends it, never its thread. Not thread-safe: a socket belongs to one
// process.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "athanor/runtime/io.h"
#include "athanor/runtime/proc.h"

namespace athanor::dist::epmd_detail {

using clock = std::chrono::steady_clock;

// The deadline `timeout` from now (a negative timeout: none).
clock::time_point deadline_after(std::chrono::milliseconds timeout);

// Connects to host:port before `deadline`. `host` is a numeric IPv4 address, "localhost", or a
// name resolved (getaddrinfo, IPv4) on a dirty I/O thread. Throws std::system_error: the connect's
// errno, ETIMEDOUT at the deadline, EHOSTUNREACH for a name that does not resolve.
task<tcp_socket> connect_before(std::string host, std::uint16_t port, clock::time_point deadline);

// Reads at least one byte; returns the count, or 0 at end of stream (or reset). Throws
// std::system_error(ETIMEDOUT) at the deadline and for other socket errors.
task<std::size_t> read_some_before(tcp_socket& s, std::span<std::byte> buf, clock::time_point deadline);

// Reads exactly buf.size() bytes; false if the stream ended first. Throws as read_some_before.
task<bool> read_exactly_before(tcp_socket& s, std::span<std::byte> buf, clock::time_point deadline);

// Reads until end of stream. Throws epmd_error when more than max_bytes arrive, else as
// read_some_before.
task<std::string> read_to_end_before(tcp_socket& s, std::size_t max_bytes, clock::time_point deadline);

// Writes all of `bytes`. Throws std::system_error (ETIMEDOUT at the deadline, EPIPE...).
task<void> write_all_before(tcp_socket& s, std::string bytes, clock::time_point deadline);

// True if `ipv4` (dotted quad) is in 127.0.0.0/8, or `host` is "localhost".
bool is_loopback(std::string_view host) noexcept;

}  // namespace athanor::dist::epmd_detail
