// A connection's byte stream: plain TCP or TLS over it, with timeouts and mailbox wake-ups. Owned
// by one process; not thread-safe. Internal to the web part.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "athanor/runtime/io.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace athanor::web::detail {

// An SSL_CTX for a server: certificate chain and private key from PEM files. Thread-safe once made
// (OpenSSL contexts are shared by connections).
class tls_context {
 public:
  // Loads the files; throws std::runtime_error with OpenSSL's reason on failure.
  tls_context(const std::string& cert_file, const std::string& key_file);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;
  SSL_CTX* get() const noexcept { return ctx_; }

 private:
  SSL_CTX* ctx_ = nullptr;
};

// What a transport read ended with.
struct read_outcome {
  std::string_view data;  // the bytes read, in this thread's scratch buffer: use them before the next co_await
  std::size_t n = 0;
  bool eof = false;      // peer closed, reset, or a TLS error
  bool timeout = false;
  bool message = false;  // a wake-up message is waiting in the mailbox
};

class transport {
 public:
  transport() = default;
  explicit transport(tcp_socket s) noexcept : sock_(std::move(s)) {}
  transport(transport&&) noexcept;
  transport& operator=(transport&&) noexcept;
  ~transport();

  // Starts TLS as a server on this connection (call once, before any read). Returns false if
  // the handshake failed or did not finish within `timeout`.
  task<bool> tls_accept(SSL_CTX* ctx, std::chrono::milliseconds timeout);

  // Reads what is available (at least one byte), waiting up to `timeout` (negative: forever).
  // With wake_type (a message type id) or wake_any, returns early when such a message is queued.
  // The bytes land in the scratch buffer of the thread that resumes the caller, which must use
  // them before it next suspends (another process on this thread reuses the buffer).
  task<read_outcome> read(std::chrono::milliseconds timeout, const void* wake_type = nullptr, bool wake_any = false);
  // One read without waiting: returns true with `out` filled (bytes, or eof) or false when the
  // caller must wait for `want` (io_readable, or io_writable when TLS needs to write first) and
  // try again. For loops that wait themselves, to save read()'s coroutine frame.
  bool read_now(read_outcome& out, std::uint32_t& want);
  // Non-blocking write: bytes written, or would_block. Errors (peer gone) read as n = 0, eof = true.
  io_result try_write(std::string_view data) noexcept;
  // Writes all of data, waiting up to `timeout` for the socket to drain. Returns false on timeout
  // or when the peer is gone.
  task<bool> write_all(std::string data, std::chrono::milliseconds timeout);
  // Waits until writable (or timeout / wake-up as in read()).
  task<io_wait_result> wait_writable(std::chrono::milliseconds timeout, const void* wake_type = nullptr, bool wake_any = false);

  // Registers the socket with the poller once for process `owner`, so that its waits cost no
  // epoll_ctl each (a WebSocket process waits once per message); afterwards only that process
  // may use this transport.
  void attach(pid owner) noexcept;

  void shutdown_write() noexcept;
  void close() noexcept;
  bool is_open() const noexcept { return sock_.is_open(); }
  bool is_tls() const noexcept { return ssl_ != nullptr; }
  bool is_attached() const noexcept { return attached_; }
  int fd() const noexcept { return sock_.native_handle(); }
  tcp_socket& socket() noexcept { return sock_; }

 private:
  tcp_socket sock_;
  SSL* ssl_ = nullptr;
  // The last plain read took less than the buffer, so the socket is most likely empty now: the
  // next read waits for readiness first instead of spending a read(2) on EAGAIN. (Safe: arming
  // a one-shot poll reports data that is already there, and on an attached socket bytes that
  // came after that read left an edge behind.)
  bool drained_ = false;
  bool attached_ = false;  // edge-triggered registration for the owning process (attach())
};

// A scratch buffer for reads, one per scheduler thread: a connection copies out only the bytes
// it must keep (a partial request or frame), so an idle connection holds no read buffer.
std::span<std::byte> scratch() noexcept;

}  // namespace athanor::web::detail
