// One TLS connection of Erlang distribution over TLS, as a byte transformer: it owns no socket.
// The connection keeps doing its own non-blocking socket I/O (recv, sendmsg, its waits and
// deadlines) and passes bytes through the session, which is what lets one loop serve plain and
// TLS connections alike. Internal to the dist part.
//
//   tls_session s = tls_session::client(dialling_context, "localhost");  // host of a@localhost
//   co_await tls_handshake(socket, s, 7s);            // throws tls_error, std::system_error
//   // per read: ciphertext in, plaintext out, and whatever TLS must answer goes out too
//   s.put_received(bytes_from_recv);
//   while (std::size_t n = s.read(buffer)) handle(buffer.first(n));
//   if (s.peer_closed()) ...                          // close_notify: the stream is over
//   // per write: plaintext in, ciphertext out
//   s.write(packet);
//   sendmsg(s.pending_output()); s.consume_output(sent);
//
// After every call (read() included: TLS 1.3 key updates and TLS 1.2 renegotiation are
// answered from inside it) pending_output() may have grown, and the caller must send it when
// the socket takes it. A failure throws tls_error; its alert for the peer is then pending
// output, which the caller may send (best effort) before closing the socket.
//
// Thread-safety: a session belongs to one connection; calls on it must not overlap. Different
// sessions, also of one context, are independent.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "athanor/dist/tls.h"
#include "athanor/runtime/io.h"
#include "athanor/runtime/proc.h"

namespace athanor::dist {

namespace detail {
struct tls_session_state;  // OpenSSL's SSL and the session's buffers (tls.cpp)
}

// A TLS connection driven through memory: ciphertext in with put_received(), plaintext out with
// read(); plaintext in with write(), ciphertext out with pending_output()/consume_output().
// Movable, not copyable; moving keeps the connection (the state lives on the heap), and a
// moved-from session may only be destroyed or assigned to.
class tls_session {
 public:
  // A session for the dialling side. `host` is the host the peer was dialled as (the host part
  // of its node name): it is sent as SNI when it is a DNS name, and with the context's
  // verify_peer and check_host_name the peer's certificate must name it ("" checks no name).
  // Its ClientHello is pending output at once. Throws tls_error if OpenSSL cannot make the
  // session (out of memory).
  static tls_session client(const tls_context& context, std::string_view host);
  // A session for the accepting side; it waits for the ClientHello. Throws as client() does.
  static tls_session server(const tls_context& context);

  tls_session(tls_session&& other) noexcept;
  tls_session& operator=(tls_session&& other) noexcept;
  ~tls_session();

  // Takes ciphertext read from the socket. Never fails: the bytes are kept until handshake() or
  // read() processes them, so the caller's buffer may be reused at once.
  void put_received(std::span<const std::byte> ciphertext);

  // Takes the handshake as far as the received bytes allow, adding the answers to pending
  // output. Returns true once the handshake is done (and from then on), false when it needs
  // more input. Throws tls_error when it fails: the peer's certificate does not verify (the
  // message says why), the peer refused ours (its alert), or the bytes are not TLS.
  bool handshake();
  bool handshake_done() const noexcept;

  // Decrypts into `out` what has arrived: returns the number of bytes (at most one record's,
  // so loop until it returns 0), or 0 when no whole record is buffered, when the handshake is
  // not done yet (read() takes it further first), or after the peer's close_notify
  // (peer_closed() then says so). Application bytes that came with the handshake's last flight
  // are returned here. Throws tls_error on a record that does not decrypt, a fatal alert from
  // the peer, or a session that failed before.
  std::size_t read(std::span<std::byte> out);
  // True once the peer has sent close_notify: nothing more will be read.
  bool peer_closed() const noexcept;

  // Encrypts all of `plaintext` into pending output (or, during a renegotiation the peer
  // started, keeps it and encrypts it as soon as the renegotiation allows). Throws
  // std::logic_error before the handshake is done or after close(); tls_error if the session
  // failed.
  void write(std::span<const std::byte> plaintext);

  // The ciphertext the caller must send, in order. Valid until the next non-const call.
  std::span<const std::byte> pending_output() const noexcept;
  // Drops the first n bytes of pending_output() (those the socket took); n is at most its size.
  void consume_output(std::size_t n) noexcept;

  // Ends our side: a close_notify becomes pending output and write() is refused afterwards.
  // Idempotent; never throws. (The peer's side may still be read.)
  void close() noexcept;

  // True after a tls_error was thrown; failure() is its message then.
  bool failed() const noexcept;
  const std::string& failure() const noexcept;

  // For logs, after the handshake: the peer certificate's subject in RFC 2253 form
  // ("CN=node,O=Example") or "" when the peer sent none; the version ("TLSv1.3"); the cipher.
  std::string peer_subject() const;
  std::string version() const;
  std::string cipher() const;
  bool is_server() const noexcept;

 private:
  explicit tls_session(std::unique_ptr<detail::tls_session_state> s) noexcept;
  std::unique_ptr<detail::tls_session_state> s_;
};

// Runs the handshake of `session` over `socket` within `timeout`, in the calling process (it
// suspends the process, never its thread): sends pending output, reads and feeds what arrives,
// until handshake() says done and the last flight is sent. Application bytes that arrived with
// the peer's last flight stay in the session, for read(). The socket may be attached to the
// calling process (tcp_socket::attach) or not.
// Throws tls_error when the handshake fails (after sending our alert if the socket takes it at
// once), when the peer closes the connection during it, or when the deadline passes ("timed
// out"); std::system_error for socket errors (a reset while writing, ...).
task<void> tls_handshake(tcp_socket& socket, tls_session& session, std::chrono::milliseconds timeout);

}  // namespace athanor::dist
