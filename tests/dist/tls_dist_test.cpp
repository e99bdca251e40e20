// TLS distribution (node_config::tls) against real Erlang nodes running `-proto_dist inet_tls`:
// they dial this node and it dials them, messages (large ones too, in fragments) go both ways
// inside TLS, and a peer without TLS cannot connect.
#include <fstream>
#include <future>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "erl_util.h"
#include "tls_test_certs.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;

const test_pki& certificates() {
  static temp_dir dir;
  static test_pki p = make_test_pki(dir.path());
  return p;
}

bool erl_has_ssl() {
  static const bool has = have_erl() && std::system("erl -noshell -eval "
                                                    "'halt(case code:lib_dir(ssl) of {error, _} -> 1; _ -> 0 end).' "
                                                    ">/dev/null 2>&1") == 0;
  return has;
}

// This node's TLS settings: the test CA's node certificate, peers verified both ways.
tls_options our_tls() {
  tls_role_options o{.certfile = certificates().node_cert, .keyfile = certificates().node_key,
                     .cacertfile = certificates().ca_cert};
  return tls_options{.server = o, .client = o};
}

// The matching erl option file (OTP's ssl_dist_optfile), as the README shows it.
std::string write_optfile(const std::string& dir) {
  const std::string path = dir + "/dist.conf";
  const auto& c = certificates();
  const std::string common = "{certfile, \"" + c.node_cert + "\"}, {keyfile, \"" + c.node_key + "\"}, {cacertfile, \"" +
                             c.ca_cert + "\"}, {verify, verify_peer}, {versions, ['tlsv1.3', 'tlsv1.2']}";
  std::ofstream(path) << "[{server, [" << common << ", {fail_if_no_peer_cert, true}]},\n {client, [" << common << "]}].\n";
  return path;
}

// srv answers {From, Binary} with {srv_size, byte_size(Binary)} and {From, Msg} with
// {srv_reply, Msg, self()}.
const std::string kServer =
    "register(srv, spawn(fun L() -> receive {F, B} when is_binary(B) -> F ! {srv_size, byte_size(B)}, L(); "
    "{F, M} -> F ! {srv_reply, M, self()}, L() end end)), ";

class TlsNode : public ::testing::Test {
 protected:
  void SetUp() override {
    ATHANOR_REQUIRE_ERL();
    if (!erl_has_ssl()) GTEST_SKIP() << "erl has no ssl application (Debian: apt-get install erlang-ssl)";
    epmd_port_ = free_port();
    optfile_ = write_optfile(home_.path());
    rt_ = std::make_unique<runtime>(runtime_config{.schedulers = 2});
    node_config cfg{.name = unique_name("cpptls") + "@localhost", .cookie = "tls-cookie",
                    .epmd = {.epmd = {.port = epmd_port_}}};
    cfg.tls = our_tls();
    node_ = start(cfg);
  }
  void TearDown() override {
    node_.stop();
    rt_.reset();
  }
  // An erl node on the node's EPMD (embedded: none runs), with TLS distribution or without.
  child erl(const std::string& name, const std::string& eval, bool tls = true) {
    std::vector<std::string> argv = {"erl"};
    if (tls) argv.insert(argv.end(), {"-proto_dist", "inet_tls", "-ssl_dist_optfile", optfile_});
    argv.insert(argv.end(), {"-sname", name + "@localhost", "-setcookie", "tls-cookie", "-start_epmd", "false",
                             "-noshell", "-eval", eval});
    return child(argv, erl_env(home_.path(), epmd_port_));
  }
  static std::string line_after(child& c, const std::string& prefix) {
    for (std::optional<std::string> line; (line = c.line(30s));) {
      if (line->rfind(prefix, 0) == 0) return line->substr(prefix.size());
    }
    return "<no line starting with " + prefix + ">";
  }

  std::uint16_t epmd_port_ = 0;
  temp_dir home_;
  std::string optfile_;
  std::unique_ptr<runtime> rt_;
  node node_;
};

// An erl node pings this node (it dials: we are the TLS server), then the two exchange
// messages over that connection, a 3 MB one (fragments, several TLS records each) included.
TEST_F(TlsNode, AnErlangTlsNodeDialsThisNodeAndMessagesGoBothWays) {
  const std::string them = unique_name("tlse");
  child peer = erl(them, kServer + "io:format(\"ping ~p~n\", [net_adm:ping('" + node_.full_name().full() +
                             "')]), timer:sleep(60000), halt().");
  ASSERT_EQ(line_after(peer, "ping "), "pong") << peer.output();
  const atom peer_node(them + "@localhost");
  EXPECT_EQ(node_.connected_nodes(), std::vector<atom>{peer_node});
  const term got = in_process([peer_node](process& self) -> task<term> {
    const name_on_node srv{atom("srv"), peer_node};
    send(srv, tuple(self.self(), atom("hello")));
    std::optional<term> reply = co_await self.receive_for<term>(30s);
    std::string big(3u << 20, 'z');
    send(srv, tuple(self.self(), term::binary(std::as_bytes(std::span(big)))));
    std::optional<term> size = co_await self.receive_for<term>(30s);
    co_return tuple(reply ? reply->element(1) : term(atom("none")), size ? *size : term(atom("none")));
  });
  EXPECT_EQ(got, tuple(atom("hello"), tuple(atom("srv_size"), term(std::int64_t(3) << 20)))) << got.to_string();
}

// This node dials an erl node (a send to {srv, Node} connects: we are the TLS client, and check
// that its certificate names localhost).
TEST_F(TlsNode, ThisNodeDialsAnErlangTlsNode) {
  const std::string them = unique_name("tlsd");
  child peer = erl(them, kServer + "io:format(\"up~n\"), timer:sleep(60000), halt().");
  ASSERT_EQ(line_after(peer, "up"), "") << peer.output();
  const atom peer_node(them + "@localhost");
  const term got = in_process([peer_node](process& self) -> task<term> {
    send(name_on_node{atom("srv"), peer_node}, tuple(self.self(), atom("over_tls")));
    std::optional<term> reply = co_await self.receive_for<term>(30s);
    co_return reply ? *reply : term(atom("none"));
  });
  ASSERT_TRUE(got.is_tuple() && got.tuple_size() == 3) << got.to_string() << peer.output();
  EXPECT_EQ(got.element(1), term(atom("over_tls")));
  EXPECT_EQ(node_.node_of(got.element(2).as_pid()), peer_node);
}

// A node without TLS cannot connect (its plain handshake is not TLS: refused, logged), and the
// node goes on serving TLS peers.
TEST_F(TlsNode, APlainNodeCannotConnectAndTlsPeersStillCan) {
  child plain = erl(unique_name("plain"), "io:format(\"ping ~p~n\", [net_adm:ping('" + node_.full_name().full() +
                                              "')]), halt().",
                    false);
  EXPECT_EQ(line_after(plain, "ping "), "pang") << plain.output();
  child tls = erl(unique_name("tlsok"), "io:format(\"ping ~p~n\", [net_adm:ping('" + node_.full_name().full() +
                                            "')]), halt().");
  EXPECT_EQ(line_after(tls, "ping "), "pong") << tls.output();
}

TEST(TlsNodeStart, AMissingCertificateStopsStartNamingTheFile) {
  runtime rt(runtime_config{.schedulers = 1});
  node_config cfg{.name = unique_name("cppbad") + "@localhost", .cookie = "c", .epmd = {.epmd = {.port = free_port()}}};
  tls_role_options o{.certfile = "/nonexistent/node.pem", .keyfile = "/nonexistent/node.key"};
  cfg.tls = tls_options{.server = o, .client = o};
  try {
    node n = start(cfg);
    ADD_FAILURE() << "started without its certificate";
  } catch (const node_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/node.pem"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace athanor::dist::testing
