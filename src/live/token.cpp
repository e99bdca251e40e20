// Signed tokens (token.h).
#include "athanor/live/token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "athanor/term/json.h"
#include "athanor/term/term.h"
#include "athanor/web/http.h"

namespace athanor::live {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMinSecret = 32;

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), out, &n)) {
    throw token_error("live token: HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(out), n);
}

// The key for one purpose: a token signed for one salt does not verify for another.
std::string derived_key(std::string_view secret, std::string_view salt) { return hmac_sha256(secret, salt); }
}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

std::string sign_token(std::string_view secret, std::string_view salt, std::string_view data) {
  if (secret.size() < kMinSecret) throw token_error("live token: the secret key base must be at least 32 bytes");
  const term body = map({{term("d"), term(data)}, {term("s"), term(salt)}, {term("t"), term(std::int64_t(std::time(nullptr)))}});
  const std::string head = base64url_encode(json::encode(body));
  return head + "." + base64url_encode(hmac_sha256(derived_key(secret, salt), head));
}

std::string tag(std::string_view secret, std::string_view salt, std::string_view data) {
  if (secret.size() < kMinSecret) throw token_error("live token: the secret key base must be at least 32 bytes");
  return base64url_encode(hmac_sha256(derived_key(secret, salt), data));
}

std::optional<std::string> verify_token(std::string_view secret, std::string_view salt, std::string_view token,
                                        std::chrono::seconds max_age) {
  if (secret.size() < kMinSecret) return std::nullopt;
  const std::size_t dot = token.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view head = token.substr(0, dot);
  const std::optional<std::string> mac = web::base64_decode(token.substr(dot + 1));
  const std::string expected = hmac_sha256(derived_key(secret, salt), head);
  if (!mac || mac->size() != expected.size() || CRYPTO_memcmp(mac->data(), expected.data(), expected.size()) != 0)
    return std::nullopt;
  const std::optional<std::string> text = web::base64_decode(head);
  if (!text) return std::nullopt;
  try {
    const term body = json::decode(*text);
    const term* d = body.is_map() ? body.find(term("d")) : nullptr;
    const term* s = body.is_map() ? body.find(term("s")) : nullptr;
    const term* t = body.is_map() ? body.find(term("t")) : nullptr;
    if (!d || !d->is_binary() || !s || !s->is_binary() || s->as_binary() != salt || !t || !t->is_int64()) return std::nullopt;
    const std::int64_t age = std::int64_t(std::time(nullptr)) - t->as_int();
    if (age < -60 || age > max_age.count()) return std::nullopt;  // a minute of clock skew between nodes
    return std::string(d->as_binary());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string secret_key_base(const std::string& file) {
  if (const char* env = std::getenv("ATHANOR_SECRET_KEY_BASE"); env && *env) {
    if (std::strlen(env) < kMinSecret) throw token_error("ATHANOR_SECRET_KEY_BASE must be at least 32 bytes");
    return env;
  }
  std::string path = file;
  if (path.empty()) {
    const char* home = std::getenv("HOME");
    if (!home || !*home) throw token_error("no ATHANOR_SECRET_KEY_BASE and no HOME for ~/.athanor_secret_key_base");
    path = std::string(home) + "/.athanor_secret_key_base";
  }
  if (std::ifstream in(path); in) {
    std::stringstream s;
    s << in.rdbuf();
    std::string secret = s.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.size() < kMinSecret) throw token_error(path + " holds fewer than 32 bytes");
    return secret;
  }
  unsigned char bytes[48];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw token_error("cannot make a secret key base: the CSPRNG failed");
  const std::string secret = base64url_encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
  // O_EXCL: of two processes making it at once, one writes; the other reads what it wrote.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return secret_key_base(path);
    throw token_error("cannot create " + path + ": " + std::strerror(errno));
  }
  const bool ok = ::write(fd, secret.data(), secret.size()) == ssize_t(secret.size());
  ::close(fd);
  if (!ok) throw token_error("cannot write " + path);
  return secret;
}

}  // namespace athanor::live
