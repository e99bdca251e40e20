// athanor::dist TLS — the settings and OpenSSL contexts for Erlang distribution over TLS (what
// `erl -proto_dist inet_tls -ssl_dist_optfile FILE` runs), for a node that joins TLS clusters.
//
//   tls_options o;
//   o.server = {.certfile = "node.pem", .keyfile = "node.key", .cacertfile = "ca.pem"};
//   o.client = o.server;                              // OTP's client and server options are separate
//   tls_context accepting(tls_role::server, o.server);   // throws tls_error naming a bad file
//   tls_context dialling(tls_role::client, o.client);
//
// Under TLS distribution the whole distribution stream, the cookie handshake included, runs
// inside TLS (EPMD stays plain TCP), and every packet has a 4-byte length, handshake messages
// too. The session that carries one connection's bytes through TLS is internal (dist/tls_session.h).
//
// The fields mirror OTP's per-role options (ssl_dist_optfile's `[{server, [...]}, {client,
// [...]}]`, or `-ssl_dist_opt server_certfile F client_certfile F ...`). The defaults are not
// OTP 25's: OTP verifies nothing unless told to (verify_none), we verify the peer unless told not
// to, because an unverified TLS link keeps out eavesdroppers but not impostors.
//
// Thread-safety: tls_options is a plain value. A tls_context may be used from any number of
// threads at once once made (OpenSSL contexts are read-only after set-up, and shared by
// sessions); copies share one OpenSSL context.
#pragma once

#include <stdexcept>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;

namespace athanor::dist {

// Which end of a TLS connection a context serves: the node that accepted the TCP connection is
// the TLS server, the one that dialled is the client (as in OTP).
enum class tls_role { server, client };

// The lowest and highest TLS versions a context offers.
enum class tls_version { tls1_2, tls1_3 };

// One role's TLS settings, named after OTP's ssl options. A plain value type.
struct tls_role_options {
  // PEM file with this node's certificate, optionally followed by the chain up to (not
  // including) the root. Required for the server role; for the client role only when the server
  // asks for a certificate (OTP's fail_if_no_peer_cert).
  std::string certfile;
  // PEM file with the private key of certfile. Empty: the key is in certfile (as in OTP).
  std::string keyfile;
  // The passphrase of an encrypted key (OTP's `password`). Empty: the key is not encrypted.
  std::string password;
  // PEM file with the CA certificates that a peer's certificate must chain to. Empty: the
  // system's trust store (a self-made cluster CA belongs here).
  std::string cacertfile;
  // Check the peer's certificate (OTP's {verify, verify_peer}); false is {verify, verify_none}:
  // encrypted, but anyone can be the peer. For the server role this requests the client's
  // certificate and checks it when one is sent.
  bool verify_peer = true;
  // Server role with verify_peer: refuse a client that sends no certificate (OTP's
  // fail_if_no_peer_cert). Mutual authentication is what makes the cookie not the only key.
  bool fail_if_no_peer_cert = true;
  // Client role with verify_peer: the server's certificate must name the host it was dialled as
  // (the host part of the node name, "localhost" in a@localhost), as a subjectAltName DNS name
  // or IP address. OTP 25 checks this too, so an Athanor node's certificate needs such names for
  // Erlang clients, whatever this says.
  bool check_host_name = true;
  // How many intermediate certificates may stand between the peer's and a trusted one (OTP's
  // `depth`, whose default is 10; OpenSSL's is 100).
  int depth = 10;
  // The versions offered. OTP 25's inet_tls_dist offers only TLS 1.2 unless its option file
  // says {versions, ['tlsv1.3', 'tlsv1.2']}; offering both meets either.
  tls_version min_version = tls_version::tls1_2;
  tls_version max_version = tls_version::tls1_3;
  // OpenSSL cipher list for TLS 1.2 ("" keeps OpenSSL's default, which OTP 25 accepts). TLS
  // 1.3's suites are always OpenSSL's defaults.
  std::string ciphers;
};

// A node's TLS distribution settings, separately for the connections it accepts (server) and
// those it dials (client), as OTP has them. A plain value type.
struct tls_options {
  tls_role_options server;
  tls_role_options client;
};

// A TLS failure: a file that cannot be loaded, a handshake refused by either side (the message
// says why, e.g. "certificate verify failed: unable to get local issuer certificate"), a record
// that does not decrypt, a fatal alert from the peer. A value type; what() is for logs.
class tls_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An OpenSSL context (SSL_CTX) for one role, made from one role's options: certificate and key
// loaded and matched, the CAs to verify peers against, verification mode, versions. Sessions for
// connections are made from it (dist/tls_session.h), each holding its own reference, so a context
// may go before its sessions do.
//
// Thread-safe once made: any number of threads may make sessions from it at once. Copying is
// cheap and shares the OpenSSL context (reference-counted).
class tls_context {
 public:
  // Makes the context. Throws tls_error when a file cannot be read or parsed, when the key does
  // not match the certificate, when the server role has no certfile, or when an option is out of
  // range; the message names the file (or option) and gives OpenSSL's reason.
  tls_context(tls_role role, const tls_role_options& options);
  tls_context(const tls_context& other) noexcept;
  tls_context& operator=(const tls_context& other) noexcept;
  tls_context(tls_context&& other) noexcept;
  tls_context& operator=(tls_context&& other) noexcept;
  ~tls_context();

  tls_role role() const noexcept { return role_; }
  // The options it was made from.
  const tls_role_options& options() const noexcept { return options_; }
  // The OpenSSL context, for sessions; never null except in a moved-from context. Its settings
  // must not be changed: other threads may be using it.
  SSL_CTX* native_handle() const noexcept { return ctx_; }

 private:
  tls_role role_;
  tls_role_options options_;
  SSL_CTX* ctx_ = nullptr;
};

}  // namespace athanor::dist
