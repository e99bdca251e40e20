// TLS for distribution: tls_context and tls_session in memory (handshake, data both ways, refusals,
// garbage), and against real Erlang nodes: OTP's ssl as echo server and as client, and OTP's
// TLS distribution (inet_tls_dist) dialling us, dialled by us, and between two erl nodes with the
// option file below. The Erlang tests are skipped when erl is not installed.
//
// ---- How OTP 25 (25.2.3, Debian 12's erl) runs distribution over TLS, checked by these tests ----
//
// EPMD is unchanged and plain. A connection is a TCP connect to the port EPMD gives, then at once
// a TLS handshake (the dialling node is the TLS client, with SNI = the host part of the node
// name), then the ordinary version-6 distribution handshake inside TLS, where every handshake
// message has a 4-byte length (not 2 as over plain TCP): the first plaintext the acceptor reads
// is Len:u32 'N' Flags:u64 Creation:u32 Nlen:u16 Name. Afterwards packets have 4-byte lengths,
// as over TCP (ticks are empty packets inside TLS). Unless the option file says {versions,
// [...]}, inet_tls_dist offers only TLS 1.2 (plain ssl:connect/listen offer 1.3 and 1.2). A
// client with {verify, verify_peer} also checks that the server's certificate names the host it
// dialled (subjectAltName), so a node's certificate needs DNS:<host of its node name> (here
// DNS:localhost); the server checks no name in the client's certificate.
//
// The option file (-ssl_dist_optfile) is one Erlang term: [{server, Opts}, {client, Opts}].
// Options are ssl's: certfile, keyfile (omitted: the key is in certfile), password, cacertfile,
// verify (verify_peer | verify_none), fail_if_no_peer_cert (server), depth, versions, ciphers,
// secure_renegotiate, ... With verify_peer on both sides (mutual authentication):
//
//   [{server, [{certfile, "/path/node.pem"}, {keyfile, "/path/node.key"},
//              {cacertfile, "/path/ca.pem"}, {verify, verify_peer},
//              {fail_if_no_peer_cert, true}, {versions, ['tlsv1.3', 'tlsv1.2']}]},
//    {client, [{certfile, "/path/node.pem"}, {keyfile, "/path/node.key"},
//              {cacertfile, "/path/ca.pem"}, {verify, verify_peer},
//              {versions, ['tlsv1.3', 'tlsv1.2']}]}].
//
// Encrypted but unauthenticated (the server still needs a certificate):
//
//   [{server, [{certfile, "/path/node.pem"}, {keyfile, "/path/node.key"}, {verify, verify_none}]},
//    {client, [{verify, verify_none}]}].
//
// The same as flags (one value each; `versions` takes one version there):
//   -ssl_dist_opt server_certfile F server_keyfile K server_cacertfile C server_verify verify_peer
//                 server_fail_if_no_peer_cert true client_certfile F client_keyfile K
//                 client_cacertfile C client_verify verify_peer
//
// Two nodes that ping each other (each erl starts its own epmd unless -start_epmd false; with
// ERL_EPMD_PORT=P it uses port P, and `epmd -port P -kill` stops it):
//
//   HOME=$(mktemp -d) ERL_EPMD_PORT=4370 erl -proto_dist inet_tls -ssl_dist_optfile /path/dist.conf \
//       -sname a@localhost -setcookie secret -noshell
//   HOME=$(mktemp -d) ERL_EPMD_PORT=4370 erl -proto_dist inet_tls -ssl_dist_optfile /path/dist.conf \
//       -sname b@localhost -setcookie secret -noshell -eval 'io:format("~p~n", [net_adm:ping(a@localhost)]), halt().'
//   pong
//
// (No boot script is needed: -proto_dist inet_tls starts ssl itself.)
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "athanor/athanor.h"
#include "athanor/dist/epmd.h"
#include "athanor/dist/epmd_server.h"
#include "athanor/dist/handshake.h"
#include "athanor/dist/tls.h"
#include "dist/tls_session.h"
#include "erl_util.h"
#include "tls_test_certs.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// The certificates, made once for the whole run (in a directory removed at exit).
const test_pki& pki() {
  static temp_dir dir;
  static test_pki p = make_test_pki(dir.path());
  return p;
}

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

// A payload whose every position is distinguishable from its neighbours' (a reordered or dropped
// record shows up), from a fixed seed.
std::string pattern(std::size_t n, unsigned seed = 1) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = char(gen() & 0xff);
  return s;
}

tls_role_options node_options(tls_version max = tls_version::tls1_3) {
  tls_role_options o;
  o.certfile = pki().node_cert;
  o.keyfile = pki().node_key;
  o.cacertfile = pki().ca_cert;
  o.max_version = max;
  return o;
}

// Moves each side's pending output to the other and takes the handshakes further, until
// neither has anything left to send.
void pump(tls_session& a, tls_session& b) {
  for (int round = 0; round < 64; ++round) {
    bool moved = false;
    for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
      if (from->pending_output().empty()) continue;
      to->put_received(from->pending_output());
      from->consume_output(from->pending_output().size());
      moved = true;
    }
    if (!moved) return;
    if (!a.handshake_done()) a.handshake();
    if (!b.handshake_done()) b.handshake();
  }
  FAIL() << "the sessions kept talking";
}

// Everything `s` can decrypt now.
std::string read_all(tls_session& s) {
  std::string out;
  std::byte buf[4096];
  while (std::size_t n = s.read(buf)) out.append(reinterpret_cast<const char*>(buf), n);
  return out;
}

// ---- in memory ---------------------------------------------------------------------------

struct version_case {
  const char* name;
  tls_version version;
};
void PrintTo(const version_case& c, std::ostream* os) { *os << c.name; }

class TlsMemory : public ::testing::TestWithParam<version_case> {
 protected:
  tls_version version() const { return GetParam().version; }
};

TEST_P(TlsMemory, SessionsHandshakeThroughMemoryAndExchangeDataBothWays) {
  tls_context server_ctx(tls_role::server, node_options(version()));
  tls_context client_ctx(tls_role::client, node_options(version()));
  tls_session server = tls_session::server(server_ctx);
  tls_session client = tls_session::client(client_ctx, "localhost");
  EXPECT_FALSE(client.pending_output().empty()) << "the ClientHello is ready at once";
  EXPECT_TRUE(server.pending_output().empty());
  pump(client, server);
  ASSERT_TRUE(client.handshake_done());
  ASSERT_TRUE(server.handshake_done());
  const std::string expected_version = version() == tls_version::tls1_3 ? "TLSv1.3" : "TLSv1.2";
  EXPECT_EQ(client.version(), expected_version);
  EXPECT_EQ(server.version(), expected_version);
  EXPECT_FALSE(client.cipher().empty());
  EXPECT_EQ(client.peer_subject(), "CN=athanor-test-node,O=Athanor tests");
  EXPECT_EQ(server.peer_subject(), "CN=athanor-test-node,O=Athanor tests") << "the client showed its certificate";
  EXPECT_TRUE(server.is_server());
  EXPECT_FALSE(client.is_server());

  client.write(bytes_of("hello from the client"));
  pump(client, server);
  EXPECT_EQ(read_all(server), "hello from the client");
  server.write(bytes_of("and back"));
  pump(client, server);
  EXPECT_EQ(read_all(client), "and back");
  EXPECT_EQ(read_all(client), "") << "nothing more";

  // 1 MiB in one write: many records (16 KiB of plaintext at most each), delivered to the peer
  // in odd-sized pieces that cut records anywhere, decrypted in order.
  const std::string big = pattern(1 << 20);
  client.write(bytes_of(big));
  std::span<const std::byte> wire = client.pending_output();
  EXPECT_GT(wire.size(), big.size() + 64 * 20) << "at least 64 records, each with its overhead";
  std::string got;
  std::size_t reads = 0;
  std::byte buf[64 * 1024];
  for (std::size_t at = 0; at < wire.size(); at += 7919) {
    server.put_received(wire.subspan(at, std::min<std::size_t>(7919, wire.size() - at)));
    while (std::size_t n = server.read(buf)) {
      EXPECT_LE(n, 16384u);
      got.append(reinterpret_cast<const char*>(buf), n);
      ++reads;
    }
  }
  client.consume_output(wire.size());
  EXPECT_TRUE(client.pending_output().empty());
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big) << "the 1 MiB arrived altered";
  EXPECT_GE(reads, 64u);

  // And 1 MiB the other way, in many small writes.
  for (std::size_t at = 0; at < big.size(); at += 1000) server.write(bytes_of(std::string_view(big).substr(at, 1000)));
  pump(client, server);
  EXPECT_TRUE(read_all(client) == big);

  // close_notify: the peer reads the end of the stream, not an error; writes are refused after.
  client.close();
  client.close();  // idempotent
  EXPECT_THROW(client.write(bytes_of("late")), std::logic_error);
  pump(client, server);
  EXPECT_EQ(read_all(server), "");
  EXPECT_TRUE(server.peer_closed());
  EXPECT_FALSE(server.failed());
}

TEST_P(TlsMemory, ApplicationBytesThatCameWithTheLastFlightStayInTheSession) {
  tls_context server_ctx(tls_role::server, node_options(version()));
  tls_context client_ctx(tls_role::client, node_options(version()));
  tls_session server = tls_session::server(server_ctx);
  tls_session client = tls_session::client(client_ctx, "localhost");
  // Play the flights one at a time. The side that finishes first (the client in TLS 1.3, the
  // server in TLS 1.2) writes at once, so its last flight and its first data reach the other
  // in one piece, as they do in one TCP segment.
  tls_session* sides[2] = {&client, &server};
  for (int turn = 0; turn < 8; ++turn) {
    tls_session& from = *sides[turn % 2];
    tls_session& to = *sides[1 - turn % 2];
    const bool first_done = from.handshake_done() && !to.handshake_done();
    if (first_done) from.write(bytes_of("first packet"));
    to.put_received(from.pending_output());
    from.consume_output(from.pending_output().size());
    if (first_done) {
      EXPECT_TRUE(to.handshake());
      EXPECT_EQ(read_all(to), "first packet");
      return;
    }
    to.handshake();
  }
  ADD_FAILURE() << "no side finished first";
}

TEST_P(TlsMemory, MovedSessionsKeepTheirConnection) {
  tls_context server_ctx(tls_role::server, node_options(version()));
  tls_context client_ctx(tls_role::client, node_options(version()));
  std::vector<tls_session> sessions;
  sessions.push_back(tls_session::server(server_ctx));
  sessions.push_back(tls_session::client(client_ctx, "localhost"));
  pump(sessions[1], sessions[0]);
  sessions.reserve(100);  // moves both
  tls_session client = std::move(sessions[1]);
  client.write(bytes_of("after the move"));
  pump(client, sessions[0]);
  EXPECT_EQ(read_all(sessions[0]), "after the move");
}

INSTANTIATE_TEST_SUITE_P(Versions, TlsMemory,
                         ::testing::Values(version_case{"Tls12", tls_version::tls1_2}, version_case{"Tls13", tls_version::tls1_3}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- refusals and garbage ----------------------------------------------------------------

// Runs the handshake to its end; returns the message of the tls_error each side threw ("" if
// none), feeding each side's last words (its alert) to the other.
struct handshake_errors {
  std::string client, server;
};
handshake_errors failing_handshake(tls_session& client, tls_session& server) {
  handshake_errors e;
  for (int round = 0; round < 16; ++round) {
    bool moved = false;
    for (auto [from, to, err] : {std::tuple{&client, &server, &e.server}, std::tuple{&server, &client, &e.client}}) {
      if (from->pending_output().empty()) continue;
      to->put_received(from->pending_output());
      from->consume_output(from->pending_output().size());
      moved = true;
      if (!err->empty()) continue;
      try {
        std::byte buf[256];
        if (to->handshake()) (void)to->read(buf);  // TLS 1.3: a client learns of its refusal on reading
      } catch (const tls_error& x) {
        *err = x.what();
      }
    }
    if (!moved) break;
  }
  return e;
}

TEST(TlsSession, AClientThatVerifiesRefusesAServerItsCaDidNotSign) {
  tls_role_options stranger = node_options();
  stranger.certfile = pki().stranger_cert;
  stranger.keyfile = pki().stranger_key;
  tls_context server_ctx(tls_role::server, stranger);
  tls_context client_ctx(tls_role::client, node_options());
  tls_session server = tls_session::server(server_ctx);
  tls_session client = tls_session::client(client_ctx, "localhost");
  handshake_errors e = failing_handshake(client, server);
  EXPECT_NE(e.client.find("certificate verify failed"), std::string::npos) << e.client;
  EXPECT_NE(e.client.find("unable to get local issuer certificate"), std::string::npos) << e.client;
  EXPECT_NE(e.server.find("unknown ca"), std::string::npos) << "the server got our alert: " << e.server;
  EXPECT_TRUE(client.failed());
  EXPECT_FALSE(client.handshake_done());
  EXPECT_EQ(client.failure(), e.client);
  // A failed session stays failed, with the same message.
  std::byte buf[16];
  try {
    (void)client.read(buf);
    ADD_FAILURE() << "read on a failed session";
  } catch (const tls_error& x) {
    EXPECT_EQ(std::string(x.what()), e.client);
  }
  EXPECT_THROW(client.handshake(), tls_error);
}

TEST(TlsSession, AClientRefusesACertificateForAnotherHost) {
  tls_role_options wrong = node_options();
  wrong.certfile = pki().wrong_host_cert;
  wrong.keyfile = pki().wrong_host_key;
  tls_context server_ctx(tls_role::server, wrong);
  tls_context client_ctx(tls_role::client, node_options());
  {
    tls_session server = tls_session::server(server_ctx);
    tls_session client = tls_session::client(client_ctx, "localhost");
    handshake_errors e = failing_handshake(client, server);
    EXPECT_NE(e.client.find("hostname mismatch"), std::string::npos) << e.client;
  }
  {  // check_host_name off: the CA's signature is enough.
    tls_role_options lax = node_options();
    lax.check_host_name = false;
    tls_session server = tls_session::server(server_ctx);
    tls_session client = tls_session::client(tls_context(tls_role::client, lax), "localhost");
    pump(client, server);
    EXPECT_TRUE(client.handshake_done());
  }
  {  // The names the node certificate carries: its host's name and 127.0.0.1 pass.
    tls_context good_server(tls_role::server, node_options());
    for (std::string host : {pki_detail::host_name(), std::string("127.0.0.1")}) {
      tls_session server = tls_session::server(good_server);
      tls_session client = tls_session::client(client_ctx, host);
      pump(client, server);
      EXPECT_TRUE(client.handshake_done()) << host;
    }
  }
}

TEST(TlsSession, AServerThatRequiresACertificateRefusesAClientWithout) {
  tls_context server_ctx(tls_role::server, node_options());
  tls_role_options anonymous = node_options();
  anonymous.certfile.clear();
  anonymous.keyfile.clear();
  tls_context client_ctx(tls_role::client, anonymous);
  tls_session server = tls_session::server(server_ctx);
  tls_session client = tls_session::client(client_ctx, "localhost");
  handshake_errors e = failing_handshake(client, server);
  EXPECT_NE(e.server.find("certificate"), std::string::npos) << e.server;
  EXPECT_TRUE(server.failed());
  EXPECT_FALSE(e.client.empty()) << "the client learnt of it from the server's alert";

  // verify_peer off on the server: the same client is served (encrypted, unauthenticated).
  tls_role_options open = node_options();
  open.verify_peer = false;
  tls_session open_server = tls_session::server(tls_context(tls_role::server, open));
  tls_session client2 = tls_session::client(client_ctx, "localhost");
  pump(client2, open_server);
  EXPECT_TRUE(open_server.handshake_done());
  EXPECT_EQ(open_server.peer_subject(), "");
}

TEST(TlsSession, GarbageGivesAnErrorNotACrash) {
  tls_context server_ctx(tls_role::server, node_options());
  tls_context client_ctx(tls_role::client, node_options());
  {  // Something that is not TLS at all: an Erlang send_name, as a plain-TCP node would send.
    tls_session server = tls_session::server(server_ctx);
    const char send_name[] = "\x00\x0d" "N\x00\x00\x00\x0d\x07\xdf\x7f\xbd" "a@b";
    server.put_received(bytes_of(std::string_view(send_name, sizeof send_name - 1)));
    EXPECT_THROW(server.handshake(), tls_error);
    EXPECT_TRUE(server.failed());
    std::byte buf[64];
    EXPECT_THROW((void)server.read(buf), tls_error);
  }
  // Random bytes, many times over (a fixed seed: the same every run), and random bytes after a
  // plausible record header: each ends in a tls_error or in waiting for more, never worse.
  std::mt19937 gen(12345);
  for (int i = 0; i < 300; ++i) {
    tls_session server = tls_session::server(server_ctx);
    std::string junk(1 + gen() % 700, '\0');
    for (auto& c : junk) c = char(gen() & 0xff);
    if (i % 2) junk.replace(0, std::min<std::size_t>(junk.size(), 3), std::string("\x16\x03\x01", 3));
    server.put_received(bytes_of(junk));
    try {
      EXPECT_FALSE(server.handshake());
    } catch (const tls_error&) {
      EXPECT_TRUE(server.failed());
    }
  }
  {  // A record that does not decrypt, after a good handshake.
    tls_session server = tls_session::server(server_ctx);
    tls_session client = tls_session::client(client_ctx, "localhost");
    pump(client, server);
    ASSERT_TRUE(server.handshake_done());
    client.write(bytes_of("a record that will be damaged on the way"));
    std::vector<std::byte> wire(client.pending_output().begin(), client.pending_output().end());
    wire[wire.size() - 3] ^= std::byte{0x5a};
    server.put_received(wire);
    std::byte buf[256];
    try {
      (void)server.read(buf);
      ADD_FAILURE() << "a damaged record was accepted";
    } catch (const tls_error& e) {
      EXPECT_NE(std::string(e.what()).find("reading failed"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(server.pending_output().empty()) << "an alert for the peer";
  }
}

// ---- contexts ------------------------------------------------------------------------------

TEST(TlsContext, RefusesAMissingCertificateFileNamingIt) {
  tls_role_options o = node_options();
  o.certfile = pki().node_cert + ".missing";
  try {
    tls_context ctx(tls_role::server, o);
    ADD_FAILURE() << "no error";
  } catch (const tls_error& e) {
    EXPECT_NE(std::string(e.what()).find(o.certfile), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  o = node_options();
  o.keyfile = "/nonexistent/dir/node.key";
  EXPECT_THROW(
      {
        try {
          tls_context(tls_role::client, o);
        } catch (const tls_error& e) {
          EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/node.key"), std::string::npos) << e.what();
          throw;
        }
      },
      tls_error);
  o = node_options();
  o.cacertfile = "/nonexistent/ca.pem";
  EXPECT_THROW(tls_context(tls_role::client, o), tls_error);
}

TEST(TlsContext, RefusesFilesThatAreNotWhatTheySayAndMismatchedKeys) {
  tls_role_options o = node_options();
  o.certfile = pki().node_key;  // a key where the certificate should be
  try {
    tls_context ctx(tls_role::server, o);
    ADD_FAILURE() << "no error";
  } catch (const tls_error& e) {
    EXPECT_NE(std::string(e.what()).find(o.certfile), std::string::npos) << e.what();
  }
  o = node_options();
  o.keyfile = pki().stranger_key;  // another certificate's key
  try {
    tls_context ctx(tls_role::server, o);
    ADD_FAILURE() << "no error";
  } catch (const tls_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }
  tls_role_options no_cert;
  no_cert.cacertfile = pki().ca_cert;
  EXPECT_THROW(tls_context(tls_role::server, no_cert), tls_error) << "a server needs a certificate";
  EXPECT_NO_THROW(tls_context(tls_role::client, no_cert)) << "a client may go without";
}

TEST(TlsContext, TakesTheKeyFromTheCertificateFileAndSharesOnCopy) {
  tls_role_options o = node_options();
  o.certfile = pki().node_combined;
  o.keyfile.clear();
  tls_context server_ctx(tls_role::server, o);
  tls_context copy = server_ctx;
  EXPECT_EQ(copy.native_handle(), server_ctx.native_handle());
  tls_session server = [&] {
    tls_context short_lived = copy;  // a session keeps its context alive
    return tls_session::server(short_lived);
  }();
  tls_context moved = std::move(copy);
  EXPECT_EQ(copy.native_handle(), nullptr);
  tls_session client = tls_session::client(tls_context(tls_role::client, node_options()), "localhost");
  pump(client, server);
  EXPECT_TRUE(server.handshake_done());
  EXPECT_THROW(tls_session::client(server_ctx, "localhost"), std::logic_error) << "wrong role";
}

// ---- over sockets, against real Erlang nodes --------------------------------------------

// Sends all of the session's pending output.
task<void> flush(tcp_socket& sock, tls_session& s) {
  while (!s.pending_output().empty()) {
    const std::size_t n = s.pending_output().size();
    co_await sock.write_all(s.pending_output());
    s.consume_output(n);
  }
}

// Reads from the socket until the session gives plaintext (appended to `into`: true), or the
// stream ends, the peer sends close_notify or the deadline passes (false).
task<bool> receive(tcp_socket& sock, tls_session& s, std::string& into, clock::time_point deadline) {
  std::byte cipher[16 * 1024], plain[16 * 1024];
  for (;;) {
    bool got = false;
    while (std::size_t n = s.read(plain)) {
      into.append(reinterpret_cast<const char*>(plain), n);
      got = true;
    }
    co_await flush(sock, s);  // whatever reading made TLS answer
    if (got) co_return true;
    if (s.peer_closed()) co_return false;
    io_result r = sock.try_read(cipher);
    if (r.eof) co_return false;
    if (!r.would_block) {
      s.put_received(std::span<const std::byte>(cipher, r.n));
      continue;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0 || co_await io_wait(sock.native_handle(), io_readable, left) == io_wait_result::timeout)
      co_return false;
  }
}

// Reads an erl program's output until a line starts with `prefix`: that line's rest, or
// "<no such line>" if the output ended (or 30 s passed) first.
std::string line_after(child& c, const std::string& prefix) {
  while (std::optional<std::string> l = c.line(30s))
    if (l->rfind(prefix, 0) == 0) return l->substr(prefix.size());
  return "<no such line>";
}

std::string erl_string(const std::string& s) { return "\"" + s + "\""; }

// ssl options for erl, as an Erlang list's elements: the node certificate, verify_peer, and
// `versions` unless empty.
std::string erl_ssl_options(const std::string& versions) {
  std::string o = "{certfile, " + erl_string(pki().node_cert) + "}, {keyfile, " + erl_string(pki().node_key) +
                  "}, {cacertfile, " + erl_string(pki().ca_cert) + "}, {verify, verify_peer}";
  if (!versions.empty()) o += ", {versions, " + versions + "}";
  return o;
}

// Whether erl has its ssl application (Debian's erlang-ssl, which erlang-base lacks; elixir
// brings it in). Asked once per run.
bool erl_has_ssl() {
  static const bool has = have_erl() && std::system("erl -noshell -eval "
                                                    "'halt(case code:lib_dir(ssl) of {error, _} -> 1; _ -> 0 end).' "
                                                    ">/dev/null 2>&1") == 0;
  return has;
}

#define REQUIRE_ERL_SSL()                                                                              \
  do {                                                                                                  \
    ATHANOR_REQUIRE_ERL();                                                                              \
    if (!erl_has_ssl()) GTEST_SKIP() << "erl has no ssl application (Debian: apt-get install erlang-ssl)"; \
  } while (0)

struct erl_versions {
  const char* name;
  const char* versions;  // erl's {versions, ...}; "" for its default
  const char* ours;      // what is negotiated with our default (1.2 to 1.3), as OpenSSL names it
  const char* theirs;    // the same as erl names it
};
void PrintTo(const erl_versions& v, std::ostream* os) { *os << v.name; }

class TlsErl : public ::testing::TestWithParam<erl_versions> {
 protected:
  void SetUp() override {
    REQUIRE_ERL_SSL();
    rt_ = std::make_unique<runtime>(runtime_config{.schedulers = 2});
  }
  void TearDown() override { rt_.reset(); }
  std::unique_ptr<runtime> rt_;
  temp_dir home_;
};

TEST_P(TlsErl, OurClientTalksToAnErlangSslServer) {
  const std::string script =
      "{ok, _} = application:ensure_all_started(ssl), "
      "{ok, L} = ssl:listen(0, [binary, {active, false}, {ip, {127,0,0,1}}, {fail_if_no_peer_cert, true}, " +
      erl_ssl_options(GetParam().versions) +
      "]), "
      "{ok, {_, Port}} = ssl:sockname(L), io:format(\"port ~p~n\", [Port]), "
      "{ok, T} = ssl:transport_accept(L, 30000), {ok, S} = ssl:handshake(T, 30000), "
      "{ok, [{protocol, P}]} = ssl:connection_information(S, [protocol]), io:format(\"protocol ~p~n\", [P]), "
      "Echo = fun Loop(N) -> case ssl:recv(S, 0, 30000) of {ok, D} -> ok = ssl:send(S, D), Loop(N + byte_size(D)); "
      "{error, closed} -> io:format(\"echoed ~p~n\", [N]); {error, E} -> io:format(\"error ~p~n\", [E]) end end, "
      "Echo(0), halt().";
  child erl({"erl", "-noshell", "-eval", script}, erl_env(home_.path(), free_port()));
  const std::string port = line_after(erl, "port ");
  ASSERT_FALSE(port.empty()) << erl.output();
  tls_context ctx(tls_role::client, node_options());
  const std::string payload = pattern(300'000, 7);
  struct result {
    std::string echoed, version, subject;
  };
  result r = in_process<result>([&](process&) -> task<result> {
    tcp_socket sock = co_await tcp_socket::connect("127.0.0.1", std::uint16_t(std::stoi(port)));
    tls_session s = tls_session::client(ctx, "localhost");
    co_await tls_handshake(sock, s, 10s);
    result out{.version = s.version(), .subject = s.peer_subject()};
    s.write(bytes_of(payload));
    co_await flush(sock, s);
    const auto deadline = clock::now() + 30s;
    while (out.echoed.size() < payload.size() && co_await receive(sock, s, out.echoed, deadline)) {
    }
    s.close();
    co_await flush(sock, s);
    co_return out;
  });
  EXPECT_EQ(r.version, GetParam().ours);
  EXPECT_EQ(r.subject, "CN=athanor-test-node,O=Athanor tests");
  EXPECT_EQ(r.echoed.size(), payload.size());
  EXPECT_TRUE(r.echoed == payload) << "the echo differs";
  EXPECT_EQ(line_after(erl, "protocol "), std::string("'") + GetParam().theirs + "'") << erl.output();
  EXPECT_EQ(line_after(erl, "echoed "), std::to_string(payload.size())) << erl.output();
}

TEST_P(TlsErl, AnErlangSslClientTalksToOurServer) {
  tcp_listener listener = tcp_listener::listen("127.0.0.1", 0);
  const std::string script =
      "{ok, _} = application:ensure_all_started(ssl), "
      "{ok, S} = ssl:connect(\"localhost\", " + std::to_string(listener.port()) +
      ", [binary, {active, false}, {server_name_indication, \"localhost\"}, " + erl_ssl_options(GetParam().versions) +
      "], 30000), "
      "{ok, [{protocol, P}]} = ssl:connection_information(S, [protocol]), io:format(\"protocol ~p~n\", [P]), "
      "ok = ssl:send(S, <<\"hello from erl\">>), "
      "{ok, Reply} = ssl:recv(S, 18, 30000), io:format(\"reply ~s~n\", [Reply]), "
      "ok = ssl:close(S), halt().";
  child erl({"erl", "-noshell", "-eval", script}, erl_env(home_.path(), free_port()));
  tls_context ctx(tls_role::server, node_options());
  struct result {
    std::string received, version, subject;
    bool closed = false;
  };
  result r = in_process<result>([&](process&) -> task<result> {
    result out;
    if (co_await io_wait(listener.native_handle(), io_readable, 30s) == io_wait_result::timeout) co_return out;
    tcp_socket sock = listener.try_accept();
    tls_session s = tls_session::server(ctx);
    co_await tls_handshake(sock, s, 10s);
    out.version = s.version();
    out.subject = s.peer_subject();
    const auto deadline = clock::now() + 30s;
    while (out.received.size() < 14 && co_await receive(sock, s, out.received, deadline)) {
    }
    s.write(bytes_of("hello from athanor"));
    co_await flush(sock, s);
    std::string rest;
    while (co_await receive(sock, s, rest, deadline)) {
    }
    out.closed = s.peer_closed();  // erl's ssl:close sends close_notify
    co_return out;
  });
  EXPECT_EQ(r.received, "hello from erl");
  EXPECT_EQ(r.version, GetParam().ours);
  EXPECT_EQ(r.subject, "CN=athanor-test-node,O=Athanor tests") << "erl showed its certificate";
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(line_after(erl, "protocol "), std::string("'") + GetParam().theirs + "'") << erl.output();
  EXPECT_EQ(line_after(erl, "reply "), "hello from athanor") << erl.output();
  EXPECT_EQ(erl.wait(), 0) << erl.output();
}

INSTANTIATE_TEST_SUITE_P(ErlVersions, TlsErl,
                         ::testing::Values(erl_versions{"ErlDefault", "", "TLSv1.3", "tlsv1.3"},
                                           erl_versions{"Tls12Only", "['tlsv1.2']", "TLSv1.2", "tlsv1.2"}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- TLS distribution ----------------------------------------------------------------------

// An -ssl_dist_optfile for the test certificates (see the comment at the top).
std::string write_optfile(const std::string& dir, const std::string& name, bool verify_peer, const std::string& versions) {
  const std::string path = dir + "/" + name;
  std::ofstream f(path);
  if (verify_peer) {
    const std::string common = "{certfile, " + erl_string(pki().node_cert) + "}, {keyfile, " + erl_string(pki().node_key) +
                               "}, {cacertfile, " + erl_string(pki().ca_cert) + "}, {verify, verify_peer}" +
                               (versions.empty() ? "" : ", {versions, " + versions + "}");
    f << "[{server, [" << common << ", {fail_if_no_peer_cert, true}]},\n {client, [" << common << "]}].\n";
  } else {
    f << "[{server, [{certfile, " << erl_string(pki().node_cert) << "}, {keyfile, " << erl_string(pki().node_key)
      << "}, {verify, verify_none}]},\n {client, [{verify, verify_none}]}].\n";
  }
  return path;
}

struct dist_case {
  const char* name;
  bool verify_peer;
  const char* versions;  // the option file's {versions, ...}; "" for inet_tls_dist's default
  const char* expected;  // the TLS version an erl node and we agree on
};
void PrintTo(const dist_case& c, std::ostream* os) { *os << c.name; }

class TlsDist : public ::testing::TestWithParam<dist_case> {
 protected:
  void SetUp() override {
    REQUIRE_ERL_SSL();
    rt_ = std::make_unique<runtime>(runtime_config{.schedulers = 2});
    epmd_ = epmd_server::start({.addresses = {"127.0.0.1"}, .port = 0});
    optfile_ = write_optfile(home_.path(), "dist.conf", GetParam().verify_peer, GetParam().versions);
  }
  void TearDown() override {
    epmd_.stop();
    rt_.reset();
  }
  // An erl node with TLS distribution, using the embedded EPMD (the node's own epmd is not started).
  child erl_node(const std::string& name, const std::string& eval) {
    return child({"erl", "-proto_dist", "inet_tls", "-ssl_dist_optfile", optfile_, "-sname", name + "@localhost",
                  "-setcookie", "tls-cookie", "-start_epmd", "false", "-noshell", "-eval", eval},
                 erl_env(home_.path(), epmd_.port()));
  }
  // Our TLS options for the case: verify_peer as the option file says.
  tls_role_options our_options() const {
    tls_role_options o = node_options();
    o.verify_peer = GetParam().verify_peer;
    return o;
  }
  handshake_settings settings(const std::string& name) const {
    handshake_settings s{.name = node_name::parse(name + "@localhost"), .creation = 0x1234, .cookie = cookie("tls-cookie")};
    s.framing = framing::four_byte_length;  // TLS distribution: 4-byte lengths from the start
    return s;
  }

  std::unique_ptr<runtime> rt_;
  temp_dir home_;
  epmd_server epmd_;
  std::string optfile_;
};

TEST_P(TlsDist, TwoErlNodesPingEachOtherWithTheOptionFile) {
  const std::string a = unique_name("tls_a"), b = unique_name("tls_b");
  child node_a = erl_node(a, "io:format(\"up~n\"), timer:sleep(60000), halt().");
  ASSERT_EQ(line_after(node_a, "up"), "") << node_a.output();
  child node_b = erl_node(b, "io:format(\"ping ~p~n\", [net_adm:ping('" + a + "@localhost')]), halt().");
  EXPECT_EQ(line_after(node_b, "ping "), "pong") << node_b.output() << node_a.output();
}

// An erl node dials us (net_adm:ping): TCP to the port we registered, TLS with us as server,
// then the distribution handshake inside TLS, 4-byte framed from its first message.
TEST_P(TlsDist, AnErlNodeDialsUsOverTls) {
  const std::string us = unique_name("tls_cpp"), them = unique_name("tls_e");
  tcp_listener listener = tcp_listener::listen("127.0.0.1", 0);
  epmd_registration reg = in_process<epmd_registration>([&](process&) -> task<epmd_registration> {
    co_return co_await epmd_register({.name = us, .port = listener.port(), .node_type = epmd_hidden_node},
                                     {.host = "127.0.0.1", .port = epmd_.port()});
  });
  child erl = erl_node(them, "io:format(\"ping ~p~n\", [net_adm:ping('" + us + "@localhost')]), halt().");
  tls_context ctx(tls_role::server, our_options());
  struct result {
    std::string first_packet, version, subject, peer, failure;
    bool connected = false;
  };
  result r = in_process<result>([&](process&) -> task<result> {
    result out;
    if (co_await io_wait(listener.native_handle(), io_readable, 30s) == io_wait_result::timeout) co_return out;
    tcp_socket sock = listener.try_accept();
    tls_session s = tls_session::server(ctx);
    co_await tls_handshake(sock, s, default_setup_time);
    out.version = s.version();
    out.subject = s.peer_subject();
    handshake_settings hs = settings(us);
    hs.creation = reg.creation();
    handshake_acceptor acceptor(hs);
    const auto deadline = clock::now() + 30s;
    std::string plain;
    std::vector<std::byte> reply;
    while (acceptor.state() == handshake_state::in_progress || acceptor.state() == handshake_state::awaiting_decision) {
      plain.clear();
      if (!co_await receive(sock, s, plain, deadline)) break;
      if (out.first_packet.empty()) out.first_packet = plain;
      reply.clear();
      if (acceptor.feed(bytes_of(plain), reply) == handshake_state::awaiting_decision)
        acceptor.answer(handshake_status::ok, reply);
      s.write(reply);
      co_await flush(sock, s);
    }
    out.connected = acceptor.state() == handshake_state::connected;
    out.failure = acceptor.failure_detail();
    if (out.connected) out.peer = acceptor.outcome().peer.full();
    s.close();
    co_await flush(sock, s);
    co_return out;
  });
  EXPECT_EQ(r.version, GetParam().expected);
  if (GetParam().verify_peer) EXPECT_EQ(r.subject, "CN=athanor-test-node,O=Athanor tests");
  // 00 00 00 len 'N' Flags:u64 Creation:u32 Nlen:u16 Name
  const std::string name = them + "@localhost";
  ASSERT_GE(r.first_packet.size(), 4u + 15u + name.size()) << erl.output();
  const std::uint32_t len = std::uint32_t(std::uint8_t(r.first_packet[0])) << 24 | std::uint32_t(std::uint8_t(r.first_packet[1])) << 16 |
                            std::uint32_t(std::uint8_t(r.first_packet[2])) << 8 | std::uint8_t(r.first_packet[3]);
  EXPECT_EQ(len, 15u + name.size()) << "a 4-byte length";
  EXPECT_EQ(r.first_packet[4], 'N');
  EXPECT_EQ(r.first_packet.substr(19, name.size()), name);
  EXPECT_TRUE(r.connected) << r.failure << "\n" << erl.output();
  EXPECT_EQ(r.peer, name);
}

// We dial an erl node: TLS as client (SNI and host name check "localhost"), then our
// handshake_initiator with 4-byte framing, up to a connection the erl node lists as hidden.
TEST_P(TlsDist, WeDialAnErlNodeOverTls) {
  const std::string us = unique_name("tls_cpp"), them = unique_name("tls_s");
  child erl = erl_node(them,
                       "net_kernel:monitor_nodes(true, [{node_type, hidden}]), io:format(\"up~n\"), "
                       "receive {nodeup, N, _} -> io:format(\"nodeup ~s~n\", [N]) after 30000 -> io:format(\"nodeup none~n\") end, "
                       "receive {nodedown, _, _} -> io:format(\"nodedown~n\") after 30000 -> ok end, halt().");
  ASSERT_EQ(line_after(erl, "up"), "") << erl.output();
  tls_context ctx(tls_role::client, our_options());
  struct result {
    std::string version, subject, peer, failure;
    bool connected = false;
  };
  result r = in_process<result>([&](process&) -> task<result> {
    result out;
    std::optional<epmd_node> where = co_await epmd_port_please(them, {.host = "127.0.0.1", .port = epmd_.port()});
    if (!where) co_return out;
    tcp_socket sock = co_await tcp_socket::connect("127.0.0.1", where->port);
    tls_session s = tls_session::client(ctx, "localhost");
    co_await tls_handshake(sock, s, default_setup_time);
    out.version = s.version();
    out.subject = s.peer_subject();
    handshake_initiator initiator(settings(us), node_name::parse(them + "@localhost"));
    std::vector<std::byte> bytes;
    initiator.start(bytes);
    s.write(bytes);
    co_await flush(sock, s);
    const auto deadline = clock::now() + 30s;
    std::string plain;
    while (initiator.state() == handshake_state::in_progress) {
      plain.clear();
      if (!co_await receive(sock, s, plain, deadline)) {
        initiator.end_of_input();
        break;
      }
      bytes.clear();
      initiator.feed(bytes_of(plain), bytes);
      s.write(bytes);
      co_await flush(sock, s);
    }
    out.connected = initiator.state() == handshake_state::connected;
    out.failure = initiator.failure_detail();
    if (out.connected) out.peer = initiator.outcome().peer.full();
    s.close();
    co_await flush(sock, s);
    co_return out;
  });
  EXPECT_EQ(r.version, GetParam().expected);
  EXPECT_EQ(r.subject, "CN=athanor-test-node,O=Athanor tests");
  EXPECT_TRUE(r.connected) << r.failure << "\n" << erl.output();
  EXPECT_EQ(r.peer, them + "@localhost");
  EXPECT_EQ(line_after(erl, "nodeup "), us + "@localhost") << erl.output();
}

INSTANTIATE_TEST_SUITE_P(OptionFiles, TlsDist,
                         ::testing::Values(dist_case{"VerifyPeerTls13", true, "['tlsv1.3', 'tlsv1.2']", "TLSv1.3"},
                                           dist_case{"VerifyPeerDefaultVersions", true, "", "TLSv1.2"},
                                           dist_case{"VerifyNone", false, "", "TLSv1.2"}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace athanor::dist::testing
