// Throwaway certificates for the TLS tests, made with OpenSSL's API (no `openssl` program
// needed): a CA, a node certificate it signs for "localhost", this host's name and 127.0.0.1
// (usable as server and client, as a distribution node's is), and a second, unrelated CA with
// a certificate of its own, for the tests that expect verification to fail. EC P-256 keys:
// quick to make. Written as PEM files into a directory the caller owns.
#pragma once

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace athanor::dist::testing {

// The files a pki writes, all PEM.
struct test_pki {
  std::string ca_cert;          // the cluster's CA
  std::string node_cert;        // signed by ca_cert: CN=athanor-test-node, SAN localhost, hostname, 127.0.0.1
  std::string node_key;
  std::string node_combined;    // node_cert followed by node_key (OTP's certfile without keyfile)
  std::string other_ca_cert;    // an unrelated CA
  std::string stranger_cert;    // signed by other_ca_cert, same names as node_cert
  std::string stranger_key;
  std::string wrong_host_cert;  // signed by ca_cert, but only for "elsewhere.invalid"
  std::string wrong_host_key;
};

namespace pki_detail {

struct key_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct x509_free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_free>;
using cert_ptr = std::unique_ptr<X509, x509_free>;

inline key_ptr make_key() {
  key_ptr k(EVP_EC_gen("P-256"));
  if (!k) throw std::runtime_error("test pki: EVP_EC_gen failed");
  return k;
}

inline void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) throw std::runtime_error("test pki: extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by issuer/issuer_key (itself when issuer is null),
// valid from an hour ago for two days.
inline cert_ptr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                          const std::string& alt_names, long serial) {
  cert_ptr cert(X509_new());
  X509* c = cert.get();
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
  X509_gmtime_adj(X509_getm_notBefore(c), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c), 2L * 24 * 3600);
  X509_set_pubkey(c, key);
  X509_NAME* name = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Athanor tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer ? issuer : c;
  X509_set_issuer_name(c, X509_get_subject_name(signer));
  if (ca) {
    add_extension(c, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(c, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(c, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(c, signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    add_extension(c, signer, NID_ext_key_usage, "serverAuth,clientAuth");
    if (!alt_names.empty()) add_extension(c, signer, NID_subject_alt_name, alt_names);
  }
  add_extension(c, signer, NID_subject_key_identifier, "hash");
  if (issuer) add_extension(c, signer, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) throw std::runtime_error("test pki: X509_sign failed");
  return cert;
}

inline void write_file(const std::string& path, const std::vector<X509*>& certs, EVP_PKEY* key) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("test pki: cannot write " + path);
  for (X509* c : certs) PEM_write_X509(f, c);
  if (key) PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

inline std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace pki_detail

// Makes the CA, the node certificate and the strangers in `dir` (which must exist).
inline test_pki make_test_pki(const std::string& dir) {
  using namespace pki_detail;
  test_pki p;
  p.ca_cert = dir + "/ca.pem";
  p.node_cert = dir + "/node.pem";
  p.node_key = dir + "/node.key";
  p.node_combined = dir + "/node_combined.pem";
  p.other_ca_cert = dir + "/other_ca.pem";
  p.stranger_cert = dir + "/stranger.pem";
  p.stranger_key = dir + "/stranger.key";
  p.wrong_host_cert = dir + "/wrong_host.pem";
  p.wrong_host_key = dir + "/wrong_host.key";

  const std::string names = "DNS:localhost,DNS:" + host_name() + ",IP:127.0.0.1";
  key_ptr ca_key = make_key(), node_key = make_key(), other_key = make_key(), stranger_key = make_key(),
          wrong_key = make_key();
  cert_ptr ca = make_cert("Athanor test CA", ca_key.get(), nullptr, nullptr, true, "", 1);
  cert_ptr node = make_cert("athanor-test-node", node_key.get(), ca.get(), ca_key.get(), false, names, 2);
  cert_ptr other_ca = make_cert("Some other CA", other_key.get(), nullptr, nullptr, true, "", 3);
  cert_ptr stranger = make_cert("stranger", stranger_key.get(), other_ca.get(), other_key.get(), false, names, 4);
  cert_ptr wrong = make_cert("elsewhere", wrong_key.get(), ca.get(), ca_key.get(), false, "DNS:elsewhere.invalid", 5);

  write_file(p.ca_cert, {ca.get()}, nullptr);
  write_file(p.node_cert, {node.get()}, nullptr);
  write_file(p.node_key, {}, node_key.get());
  write_file(p.node_combined, {node.get()}, node_key.get());
  write_file(p.other_ca_cert, {other_ca.get()}, nullptr);
  write_file(p.stranger_cert, {stranger.get()}, nullptr);
  write_file(p.stranger_key, {}, stranger_key.get());
  write_file(p.wrong_host_cert, {wrong.get()}, nullptr);
  write_file(p.wrong_host_key, {}, wrong_key.get());
  return p;
}

}  // namespace athanor::dist::testing
