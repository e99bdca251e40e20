// TLS for distribution connections. A session runs OpenSSL over a BIO of our own whose reads
// take from the bytes the caller received and whose writes append to the bytes the caller must
// send: OpenSSL never touches the socket, so the connection loop keeps its own recv/sendmsg,
// waits and deadlines, and TLS costs no thread (compare web/transport.cpp, where OpenSSL owns
// the descriptor). One BIO serves both directions, and it never blocks on output, so OpenSSL
// only ever asks for more input (SSL_ERROR_WANT_READ).
#include "athanor/dist/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "dist/tls_session.h"

namespace athanor::dist {

namespace {

// Everything in OpenSSL's error queue for this thread, as "reason; reason" (the queue is left
// empty: a stale entry would be blamed on the next, unrelated failure).
std::string drain_openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    std::string text;
    if (reason) {
      text = reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      text = buf;
    }
    if (out.find(text) != std::string::npos) continue;  // OpenSSL often reports one cause twice
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void fail_loading(const std::string& what, const std::string& file) {
  throw tls_error("athanor::dist TLS: cannot load " + what + " '" + file + "': " + drain_openssl_errors());
}

// OpenSSL's message for a missing file is "system lib" or "no such file": say it plainly, with
// the file's name, before OpenSSL tries.
void require_readable(const std::string& what, const std::string& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) {
    const int err = errno;
    throw tls_error("athanor::dist TLS: cannot load " + what + " '" + file + "': " + std::strerror(err));
  }
  std::fclose(f);
}

int openssl_version(tls_version v) { return v == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }

// The password callback for an encrypted key: userdata is the std::string with the passphrase.
int give_password(char* buf, int size, int /*rwflag*/, void* userdata) {
  const auto* password = static_cast<const std::string*>(userdata);
  if (!password || size <= 0) return 0;
  const int n = int(std::min<std::size_t>(password->size(), std::size_t(size)));
  std::memcpy(buf, password->data(), std::size_t(n));
  return n;
}

struct ctx_deleter {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};

}  // namespace

// ---- tls_context ---------------------------------------------------------------------------

tls_context::tls_context(tls_role role, const tls_role_options& options) : role_(role), options_(options) {
  const bool server = role == tls_role::server;
  if (options.depth < 0) throw tls_error("athanor::dist TLS: depth must not be negative");
  if (options.min_version > options.max_version)
    throw tls_error("athanor::dist TLS: min_version is above max_version");
  if (server && options.certfile.empty())
    throw tls_error("athanor::dist TLS: the server role needs a certificate (certfile)");
  if (options.certfile.empty() && !options.keyfile.empty())
    throw tls_error("athanor::dist TLS: keyfile '" + options.keyfile + "' without a certfile");

  ERR_clear_error();
  std::unique_ptr<SSL_CTX, ctx_deleter> ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) throw tls_error("athanor::dist TLS: SSL_CTX_new: " + drain_openssl_errors());
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, openssl_version(options.min_version));
  SSL_CTX_set_max_proto_version(c, openssl_version(options.max_version));
  // Partial writes: SSL_write returns after each record, so a write the peer's renegotiation
  // interrupts leaves no half-written state to repeat (see tls_session::write). Moving buffer:
  // what is left is retried from a vector that may have been reallocated meanwhile. Released
  // buffers: an idle connection holds no 16 KiB record buffers (a node may hold many).
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  // Distribution connections live long and are never resumed (OTP does not resume them either):
  // no session cache, and no TLS 1.3 tickets to send after every handshake.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  // No renegotiation (OTP's distribution never asks for one): a peer that starts one and never
  // finishes it would otherwise hold every write in the session's plaintext backlog.
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  if (server) SSL_CTX_set_num_tickets(c, 0);
  if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(c, options.ciphers.c_str()) != 1)
    throw tls_error("athanor::dist TLS: ciphers '" + options.ciphers + "': " + drain_openssl_errors());

  if (!options.certfile.empty()) {
    require_readable("certificate file", options.certfile);
    if (SSL_CTX_use_certificate_chain_file(c, options.certfile.c_str()) != 1)
      fail_loading("certificate file", options.certfile);
    const std::string& keyfile = options.keyfile.empty() ? options.certfile : options.keyfile;
    require_readable("key file", keyfile);
    // The passphrase is only needed while the key is read: the callback is removed afterwards,
    // so the context keeps no pointer into this object (copies of it outlive it).
    SSL_CTX_set_default_passwd_cb(c, give_password);
    SSL_CTX_set_default_passwd_cb_userdata(c, const_cast<std::string*>(&options.password));
    const int loaded = SSL_CTX_use_PrivateKey_file(c, keyfile.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_set_default_passwd_cb(c, nullptr);
    SSL_CTX_set_default_passwd_cb_userdata(c, nullptr);
    // OpenSSL checks the key against the certificate while loading it, and calls a mismatch
    // "key values mismatch": say which files disagree.
    if (loaded != 1 || SSL_CTX_check_private_key(c) != 1) {
      const std::string why = drain_openssl_errors();
      if (loaded != 1 && why.find("key values mismatch") == std::string::npos)
        throw tls_error("athanor::dist TLS: cannot load key file '" + keyfile + "': " + why);
      throw tls_error("athanor::dist TLS: the key in '" + keyfile + "' does not match the certificate in '" +
                      options.certfile + "'");
    }
  }

  if (!options.cacertfile.empty()) {
    require_readable("CA file", options.cacertfile);
    if (SSL_CTX_load_verify_locations(c, options.cacertfile.c_str(), nullptr) != 1)
      fail_loading("CA file", options.cacertfile);
    if (server && options.verify_peer) {
      // Tells clients which CAs we accept, so one with several certificates can pick (OTP does).
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.cacertfile.c_str()))
        SSL_CTX_set_client_CA_list(c, names);
      ERR_clear_error();
    }
  } else if (options.verify_peer && SSL_CTX_set_default_verify_paths(c) != 1) {
    throw tls_error("athanor::dist TLS: cannot load the system's trust store: " + drain_openssl_errors());
  }

  int mode = SSL_VERIFY_NONE;
  if (options.verify_peer) {
    mode = SSL_VERIFY_PEER;
    if (server && options.fail_if_no_peer_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_CTX_set_verify(c, mode, nullptr);
  SSL_CTX_set_verify_depth(c, options.depth);
  ctx_ = ctx.release();
}

tls_context::tls_context(const tls_context& other) noexcept
    : role_(other.role_), options_(other.options_), ctx_(other.ctx_) {
  if (ctx_) SSL_CTX_up_ref(ctx_);
}

tls_context& tls_context::operator=(const tls_context& other) noexcept {
  if (this != &other) {
    if (other.ctx_) SSL_CTX_up_ref(other.ctx_);
    if (ctx_) SSL_CTX_free(ctx_);
    role_ = other.role_;
    options_ = other.options_;
    ctx_ = other.ctx_;
  }
  return *this;
}

tls_context::tls_context(tls_context&& other) noexcept
    : role_(other.role_), options_(std::move(other.options_)), ctx_(std::exchange(other.ctx_, nullptr)) {}

tls_context& tls_context::operator=(tls_context&& other) noexcept {
  if (this != &other) {
    if (ctx_) SSL_CTX_free(ctx_);
    role_ = other.role_;
    options_ = std::move(other.options_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

tls_context::~tls_context() {
  if (ctx_) SSL_CTX_free(ctx_);
}

// ---- tls_session ---------------------------------------------------------------------------

namespace detail {

struct tls_session_state {
  SSL* ssl = nullptr;
  bool server = false;
  bool done = false;         // handshake finished
  bool peer_closed = false;  // close_notify received
  bool closed = false;       // our close_notify queued
  std::string failure;       // set once a tls_error was thrown
  std::vector<std::byte> in;       // ciphertext received, from in_pos on not yet given to OpenSSL
  std::size_t in_pos = 0;
  std::vector<std::byte> out;      // ciphertext to send, from out_pos on
  std::size_t out_pos = 0;
  std::vector<std::byte> backlog;  // plaintext write() took while a renegotiation held writes

  ~tls_session_state() {
    if (ssl) SSL_free(ssl);
  }

  // Throws the tls_error for a failed OpenSSL call (SSL_get_error's `code`), remembering it so
  // that later calls fail the same way.
  [[noreturn]] void fail(const char* during, int code) {
    std::string why;
    const long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (code == SSL_ERROR_SSL || code == SSL_ERROR_SYSCALL) why = drain_openssl_errors();
    else if (code == SSL_ERROR_ZERO_RETURN) why = "the peer closed the TLS connection (close_notify)";
    else why = "OpenSSL error " + std::to_string(code);
    ERR_clear_error();
    if (!done && verify != X509_V_OK)
      why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    failure = std::string("athanor::dist TLS: ") + during + " failed: " + why;
    throw tls_error(failure);
  }
  void throw_if_failed() const {
    if (!failure.empty()) throw tls_error(failure);
  }

  // Encrypts the backlog as far as OpenSSL lets it (all of it but during a renegotiation).
  void flush_backlog() {
    std::size_t taken = 0;
    while (taken < backlog.size()) {
      const std::size_t chunk = std::min<std::size_t>(backlog.size() - taken, std::size_t(1) << 30);
      std::size_t n = 0;
      ERR_clear_error();
      const int rc = SSL_write_ex(ssl, backlog.data() + taken, chunk, &n);
      if (rc == 1) {
        taken += n;
        continue;
      }
      const int code = SSL_get_error(ssl, rc);
      if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) break;
      backlog.erase(backlog.begin(), backlog.begin() + std::ptrdiff_t(taken));
      fail("writing", code);
    }
    backlog.erase(backlog.begin(), backlog.begin() + std::ptrdiff_t(taken));
  }
};

}  // namespace detail

namespace {

using session_state = detail::tls_session_state;

// The BIO between OpenSSL and a session's buffers. Reads take from `in` (none: retry later),
// writes append to `out` and always take everything.
int bio_write(BIO* b, const char* data, std::size_t len, std::size_t* written) {
  auto* s = static_cast<session_state*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  s->out.insert(s->out.end(), reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + len);
  *written = len;
  return 1;
}

int bio_read(BIO* b, char* data, std::size_t len, std::size_t* read) {
  auto* s = static_cast<session_state*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  const std::size_t available = s->in.size() - s->in_pos;
  if (available == 0) {
    BIO_set_retry_read(b);
    *read = 0;
    return 0;
  }
  const std::size_t n = std::min(len, available);
  std::memcpy(data, s->in.data() + s->in_pos, n);
  s->in_pos += n;
  *read = n;
  return 1;
}

long bio_ctrl(BIO* b, int cmd, long /*num*/, void* /*ptr*/) {
  auto* s = static_cast<session_state*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // written bytes are in `out` already
    case BIO_CTRL_PENDING:
      return s ? long(s->in.size() - s->in_pos) : 0;
    case BIO_CTRL_WPENDING:
      return 0;
    default:
      return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

int bio_destroy(BIO* b) {
  BIO_set_data(b, nullptr);
  return 1;
}

// Made once, on first use, and kept for the program's life (OpenSSL wants methods to outlive
// their BIOs). C++ guarantees the one-time initialisation is thread-safe.
BIO_METHOD* session_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "athanor dist TLS session");
    if (m) {
      BIO_meth_set_write_ex(m, bio_write);
      BIO_meth_set_read_ex(m, bio_read);
      BIO_meth_set_ctrl(m, bio_ctrl);
      BIO_meth_set_create(m, bio_create);
      BIO_meth_set_destroy(m, bio_destroy);
    }
    return m;
  }();
  return method;
}

std::unique_ptr<session_state> new_state(const tls_context& context, bool server) {
  if (!context.native_handle()) throw std::logic_error("athanor::dist TLS: a session from a moved-from context");
  ERR_clear_error();
  auto s = std::make_unique<session_state>();
  s->server = server;
  s->ssl = SSL_new(context.native_handle());  // holds its own reference to the context
  BIO_METHOD* method = session_bio_method();
  BIO* bio = method ? BIO_new(method) : nullptr;
  if (!s->ssl || !bio) {
    if (bio) BIO_free(bio);
    throw tls_error("athanor::dist TLS: cannot make a session: " + drain_openssl_errors());
  }
  BIO_set_data(bio, s.get());       // the state is on the heap: moving the session keeps it in place
  SSL_set_bio(s->ssl, bio, bio);    // one BIO both ways: SSL takes the one reference
  if (server) SSL_set_accept_state(s->ssl);
  else SSL_set_connect_state(s->ssl);
  return s;
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

tls_session::tls_session(std::unique_ptr<detail::tls_session_state> s) noexcept : s_(std::move(s)) {}
tls_session::tls_session(tls_session&& other) noexcept = default;
tls_session& tls_session::operator=(tls_session&& other) noexcept = default;
tls_session::~tls_session() = default;

tls_session tls_session::client(const tls_context& context, std::string_view host) {
  if (context.role() != tls_role::client) throw std::logic_error("athanor::dist TLS: client session from a server context");
  std::unique_ptr<session_state> s = new_state(context, false);
  const std::string name(host);
  const tls_role_options& o = context.options();
  if (!name.empty()) {
    const bool ip = is_ip_address(name);
    // SNI carries DNS names only (RFC 6066); OTP sends the node name's host.
    if (!ip && SSL_set_tlsext_host_name(s->ssl, name.c_str()) != 1)
      throw tls_error("athanor::dist TLS: host name '" + name + "': " + drain_openssl_errors());
    if (o.verify_peer && o.check_host_name) {
      X509_VERIFY_PARAM* param = SSL_get0_param(s->ssl);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                        : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
      if (ok != 1) throw tls_error("athanor::dist TLS: host name '" + name + "': " + drain_openssl_errors());
    }
  }
  tls_session session(std::move(s));
  session.handshake();  // the ClientHello, so the caller has something to send
  return session;
}

tls_session tls_session::server(const tls_context& context) {
  if (context.role() != tls_role::server) throw std::logic_error("athanor::dist TLS: server session from a client context");
  return tls_session(new_state(context, true));
}

void tls_session::put_received(std::span<const std::byte> ciphertext) {
  session_state& s = *s_;
  if (s.in_pos == s.in.size()) {
    s.in.clear();
    s.in_pos = 0;
  } else if (s.in_pos > 0 && s.in_pos >= s.in.size() / 2) {
    s.in.erase(s.in.begin(), s.in.begin() + std::ptrdiff_t(s.in_pos));  // keep the buffer from creeping
    s.in_pos = 0;
  }
  s.in.insert(s.in.end(), ciphertext.begin(), ciphertext.end());
}

bool tls_session::handshake() {
  session_state& s = *s_;
  s.throw_if_failed();
  if (s.done) return true;
  ERR_clear_error();
  const int rc = SSL_do_handshake(s.ssl);
  if (rc == 1) {
    s.done = true;
    return true;
  }
  const int code = SSL_get_error(s.ssl, rc);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return false;
  s.fail(s.server ? "TLS handshake (as server)" : "TLS handshake (as client)", code);
}

bool tls_session::handshake_done() const noexcept { return s_->done; }

std::size_t tls_session::read(std::span<std::byte> out) {
  session_state& s = *s_;
  s.throw_if_failed();
  if (!s.done && !handshake()) return 0;
  if (s.peer_closed || out.empty()) return 0;
  std::size_t n = 0;
  ERR_clear_error();
  const int rc = SSL_read_ex(s.ssl, out.data(), out.size(), &n);
  if (rc == 1) {
    if (!s.backlog.empty()) s.flush_backlog();
    return n;
  }
  const int code = SSL_get_error(s.ssl, rc);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
    if (!s.backlog.empty()) s.flush_backlog();  // a renegotiation may have just finished
    return 0;
  }
  if (code == SSL_ERROR_ZERO_RETURN) {
    s.peer_closed = true;
    return 0;
  }
  s.fail("reading", code);
}

bool tls_session::peer_closed() const noexcept { return s_->peer_closed; }

void tls_session::write(std::span<const std::byte> plaintext) {
  session_state& s = *s_;
  s.throw_if_failed();
  if (!s.done) throw std::logic_error("athanor::dist TLS: write before the handshake is done");
  if (s.closed) throw std::logic_error("athanor::dist TLS: write after close");
  if (plaintext.empty()) return;
  // The common case encrypts straight from the caller's buffer; the backlog is only for what a
  // renegotiation holds up, and it must go out first to keep the order.
  if (s.backlog.empty()) {
    std::size_t taken = 0;
    while (taken < plaintext.size()) {
      const std::size_t chunk = std::min<std::size_t>(plaintext.size() - taken, std::size_t(1) << 30);
      std::size_t n = 0;
      ERR_clear_error();
      const int rc = SSL_write_ex(s.ssl, plaintext.data() + taken, chunk, &n);
      if (rc == 1) {
        taken += n;
        continue;
      }
      const int code = SSL_get_error(s.ssl, rc);
      if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) s.fail("writing", code);
      break;
    }
    s.backlog.insert(s.backlog.end(), plaintext.begin() + std::ptrdiff_t(taken), plaintext.end());
    return;
  }
  s.backlog.insert(s.backlog.end(), plaintext.begin(), plaintext.end());
  s.flush_backlog();
}

std::span<const std::byte> tls_session::pending_output() const noexcept {
  return std::span<const std::byte>(s_->out).subspan(s_->out_pos);
}

void tls_session::consume_output(std::size_t n) noexcept {
  session_state& s = *s_;
  s.out_pos += std::min(n, s.out.size() - s.out_pos);
  if (s.out_pos == s.out.size()) {
    // All sent. A buffer grown by one large write is given back, not kept for the connection's life.
    if (s.out.capacity() > 256 * 1024) std::vector<std::byte>().swap(s.out);
    else s.out.clear();
    s.out_pos = 0;
  } else if (s.out_pos >= 64 * 1024 && s.out_pos >= s.out.size() / 2) {
    s.out.erase(s.out.begin(), s.out.begin() + std::ptrdiff_t(s.out_pos));
    s.out_pos = 0;
  }
}

void tls_session::close() noexcept {
  session_state& s = *s_;
  if (s.closed) return;
  s.closed = true;
  if (!s.failure.empty() || !s.done) return;  // no close_notify on a broken or unfinished session
  ERR_clear_error();
  (void)SSL_shutdown(s.ssl);  // queues close_notify; does not wait for the peer's
  ERR_clear_error();
}

bool tls_session::failed() const noexcept { return !s_->failure.empty(); }
const std::string& tls_session::failure() const noexcept { return s_->failure; }
bool tls_session::is_server() const noexcept { return s_->server; }

std::string tls_session::peer_subject() const {
  X509* cert = SSL_get0_peer_certificate(s_->ssl);
  if (!cert) return "";
  BIO* mem = BIO_new(BIO_s_mem());
  if (!mem) return "";
  X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long len = BIO_get_mem_data(mem, &data);
  std::string subject(data ? data : "", data ? std::size_t(len) : 0);
  BIO_free(mem);
  return subject;
}

std::string tls_session::version() const { return SSL_get_version(s_->ssl); }

std::string tls_session::cipher() const {
  const char* name = SSL_get_cipher_name(s_->ssl);
  return name ? name : "";
}

// ---- the handshake over a socket -----------------------------------------------------------

namespace {

using clock = std::chrono::steady_clock;

std::int64_t ms_left(clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return left < 0 ? 0 : std::int64_t(left);
}

[[noreturn]] void timed_out(std::chrono::milliseconds timeout) {
  throw tls_error("athanor::dist TLS: the handshake timed out after " + std::to_string(timeout.count()) + " ms");
}

// Sends what fits of the session's pending output without waiting (an alert on the way out).
void send_without_waiting(tcp_socket& socket, tls_session& session) noexcept {
  try {
    while (!session.pending_output().empty()) {
      io_result r = socket.try_write(session.pending_output());
      if (r.would_block || r.n == 0) return;
      session.consume_output(r.n);
    }
  } catch (...) {  // the peer is gone: it will not read the alert anyway
  }
}

}  // namespace

task<void> tls_handshake(tcp_socket& socket, tls_session& session, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  const int fd = socket.native_handle();
  const bool attached = socket.is_attached();
  std::byte buf[16 * 1024 + 512];  // one TLS record and its header: the size of most reads
  for (;;) {
    bool done;
    try {
      done = session.handshake();
    } catch (const tls_error&) {
      send_without_waiting(socket, session);
      throw;
    }
    // Send the flight: the whole of it, waiting for room as long as the deadline allows.
    while (!session.pending_output().empty()) {
      io_result w = socket.try_write(session.pending_output());
      if (!w.would_block) {
        session.consume_output(w.n);
        continue;
      }
      const io_wait_result r =
          co_await athanor::detail::fd_wait_for(fd, io_writable, ms_left(deadline), false, nullptr, attached);
      if (r == io_wait_result::timeout) timed_out(timeout);
    }
    if (done) co_return;
    // Read the peer's next bytes. Only what is there is taken: the peer's first application
    // bytes may follow its last flight, and those stay in the session for read().
    for (;;) {
      io_result r = socket.try_read(buf);
      if (r.eof) throw tls_error("athanor::dist TLS: the peer closed the connection during the TLS handshake");
      if (!r.would_block) {
        session.put_received(std::span<const std::byte>(buf, r.n));
        break;
      }
      if (ms_left(deadline) == 0) timed_out(timeout);
      const io_wait_result w =
          co_await athanor::detail::fd_wait_for(fd, io_readable, ms_left(deadline), false, nullptr, attached);
      if (w == io_wait_result::timeout) timed_out(timeout);
    }
  }
}

}  // namespace athanor::dist
