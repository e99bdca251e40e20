// Plain and TLS byte streams for connection processes. TLS runs OpenSSL on the non-blocking socket
// itself (SSL_set_fd): when OpenSSL wants to read or write, the process waits for that readiness
// with io_wait, so a TLS connection costs no thread either.
#include "web/transport.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <csignal>
#include <stdexcept>
#include <system_error>

namespace athanor::web::detail {

namespace {
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

using clock = std::chrono::steady_clock;

// Milliseconds left until `deadline` (negative timeout: none).
std::chrono::milliseconds left(clock::time_point deadline, bool forever) {
  if (forever) return std::chrono::milliseconds(-1);
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  return d.count() < 0 ? std::chrono::milliseconds(0) : d;
}

constexpr std::size_t kScratch = 64 * 1024;
}  // namespace

std::span<std::byte> scratch() noexcept {
  thread_local std::byte buf[kScratch];
  return std::span<std::byte>(buf, kScratch);
}

tls_context::tls_context(const std::string& cert_file, const std::string& key_file) {
  // OpenSSL writes to the socket with write(2) (SSL_set_fd), which raises SIGPIPE when the peer
  // has gone, and SIGPIPE's default action ends the whole program. As servers (and the BEAM)
  // do, ignore it: the write then fails with EPIPE and ends just that connection. A handler
  // the program installed itself is left alone.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ctx_) throw std::runtime_error("athanor::web: SSL_CTX_new: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx_, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx_) != 1) {
    std::string why = openssl_error();
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    throw std::runtime_error("athanor::web: loading " + cert_file + " / " + key_file + ": " + why);
  }
}

tls_context::~tls_context() {
  if (ctx_) SSL_CTX_free(ctx_);
}

transport::transport(transport&& o) noexcept
    : sock_(std::move(o.sock_)),
      ssl_(std::exchange(o.ssl_, nullptr)),
      drained_(std::exchange(o.drained_, false)),
      attached_(std::exchange(o.attached_, false)) {}
transport& transport::operator=(transport&& o) noexcept {
  if (this != &o) {
    close();
    sock_ = std::move(o.sock_);
    ssl_ = std::exchange(o.ssl_, nullptr);
    drained_ = std::exchange(o.drained_, false);
    attached_ = std::exchange(o.attached_, false);
  }
  return *this;
}
transport::~transport() { close(); }

void transport::close() noexcept {
  if (ssl_) {
    if (sock_.is_open()) SSL_shutdown(ssl_);  // best effort close_notify; never waits
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  sock_.close();
}

void transport::shutdown_write() noexcept {
  if (ssl_ && sock_.is_open()) SSL_shutdown(ssl_);
  sock_.shutdown_write();
}

task<bool> transport::tls_accept(SSL_CTX* ctx, std::chrono::milliseconds timeout) {
  ssl_ = SSL_new(ctx);
  if (!ssl_ || SSL_set_fd(ssl_, sock_.native_handle()) != 1) co_return false;
  auto deadline = clock::now() + timeout;
  for (;;) {
    ERR_clear_error();
    int rc = SSL_accept(ssl_);
    if (rc == 1) co_return true;
    int err = SSL_get_error(ssl_, rc);
    std::uint32_t ev;
    if (err == SSL_ERROR_WANT_READ) ev = io_readable;
    else if (err == SSL_ERROR_WANT_WRITE) ev = io_writable;
    else co_return false;
    io_wait_result w = co_await io_wait(sock_.native_handle(), ev, left(deadline, false));
    if (w == io_wait_result::timeout) co_return false;
  }
}

bool transport::read_now(read_outcome& out, std::uint32_t& want) {
  std::span<std::byte> buf = scratch();
  want = io_readable;
  if (ssl_) {
    ERR_clear_error();
    int n = SSL_read(ssl_, buf.data(), int(buf.size()));
    if (n > 0) {
      out.n = std::size_t(n);
      out.data = std::string_view(reinterpret_cast<const char*>(buf.data()), out.n);
      return true;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_WRITE) want = io_writable;
    else if (err != SSL_ERROR_WANT_READ) {
      out.eof = true;  // close_notify, reset, or a TLS failure: the stream is over either way
      return true;
    }
    return false;
  }
  if (drained_) {
    drained_ = false;  // wait first; the read after the wake-up is a real one
    return false;
  }
  io_result r;
  try {
    r = sock_.try_read(buf);
  } catch (const std::system_error&) {
    r.eof = true;
  }
  if (r.eof) {
    out.eof = true;
    return true;
  }
  if (r.would_block) return false;
  drained_ = r.n < buf.size();
  out.n = r.n;
  out.data = std::string_view(reinterpret_cast<const char*>(buf.data()), out.n);
  return true;
}

task<read_outcome> transport::read(std::chrono::milliseconds timeout, const void* wake_type, bool wake_any) {
  bool forever = timeout.count() < 0;
  auto deadline = clock::now() + (forever ? std::chrono::milliseconds(0) : timeout);
  for (;;) {
    read_outcome out;
    std::uint32_t want;
    if (read_now(out, want)) co_return out;
    io_wait_result w = co_await athanor::detail::fd_wait_for(sock_.native_handle(), want,
                                                             left(deadline, forever).count(), wake_type || wake_any,
                                                             static_cast<athanor::detail::type_id>(wake_any ? nullptr : wake_type),
                                                             attached_);
    if (w == io_wait_result::timeout) {
      out.timeout = true;
      co_return out;
    }
    if (w == io_wait_result::message) {
      out.message = true;
      co_return out;
    }
  }
}

io_result transport::try_write(std::string_view data) noexcept {
  io_result r;
  if (data.empty()) return r;
  if (ssl_) {
    ERR_clear_error();
    int n = SSL_write(ssl_, data.data(), int(std::min<std::size_t>(data.size(), 1 << 30)));
    if (n > 0) {
      r.n = std::size_t(n);
      return r;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) r.would_block = true;
    else r.eof = true;
    return r;
  }
  try {
    return sock_.try_write(std::as_bytes(std::span(data.data(), data.size())));
  } catch (const std::system_error&) {
    r.eof = true;
    return r;
  }
}

void transport::attach(pid owner) noexcept {
  // TLS reads and writes the fd itself (SSL_set_fd): epoll only.
  if (!attached_ && sock_.is_open()) attached_ = sock_.attach(owner, ssl_ == nullptr) == 0;
}

task<io_wait_result> transport::wait_writable(std::chrono::milliseconds timeout, const void* wake_type, bool wake_any) {
  io_wait_result w = co_await athanor::detail::fd_wait_for(sock_.native_handle(), io_writable,
                                                           timeout.count() < 0 ? -1 : std::int64_t(timeout.count()),
                                                           wake_type || wake_any, static_cast<athanor::detail::type_id>(wake_any ? nullptr : wake_type),
                                                           attached_);
  // On an attached socket one edge covers both directions: the edge this wait took may have
  // been bytes arriving, so the next read must look rather than wait for another edge.
  drained_ = false;
  co_return w;
}

task<bool> transport::write_all(std::string data, std::chrono::milliseconds timeout) {
  bool forever = timeout.count() < 0;
  auto deadline = clock::now() + (forever ? std::chrono::milliseconds(0) : timeout);
  std::size_t done = 0;
  while (done < data.size()) {
    io_result r = try_write(std::string_view(data).substr(done));
    if (r.eof) co_return false;
    if (!r.would_block) {
      done += r.n;
      continue;
    }
    io_wait_result w = co_await athanor::detail::fd_wait_for(sock_.native_handle(), io_writable,
                                                             left(deadline, forever).count(), false, nullptr, attached_);
    drained_ = false;  // (see wait_writable)
    if (w == io_wait_result::timeout) co_return false;
  }
  co_return true;
}

}  // namespace athanor::web::detail
