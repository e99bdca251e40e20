// Signed tokens (Phoenix.Token's role): what a LiveView page carries in data-phx-session and its
// CSRF token, so that a join can prove the page came from this server (or another node sharing
// its secret) without any server-side state, across restarts.
//
//   const std::string secret = live::secret_key_base();
//   std::string t = live::sign_token(secret, "lv-session", R"({"view":"/counter"})");
//   std::optional<std::string> data = live::verify_token(secret, "lv-session", t, std::chrono::hours(24 * 14));
//
// Format: base64url(JSON {"d": data, "s": salt, "t": unix seconds}) "." base64url(HMAC-SHA256(key,
// first part)), the key derived from the secret and the salt, so a token made for one purpose
// (salt) is refused for another. Thread-safe: plain functions.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace athanor::live {

// Thrown by secret_key_base() and sign_token() for a secret shorter than 32 bytes or when the
// secret file cannot be read or made.
class token_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The node's secret key base: ATHANOR_SECRET_KEY_BASE if set (at least 32 bytes), else the
// content of `file` (default ~/.athanor_secret_key_base), made with 64 random bytes (mode 0600)
// the first time, as erl makes ~/.erlang.cookie. Kept across restarts, so pages served before a
// restart join after it. Nodes that serve one site share it. Throws token_error.
std::string secret_key_base(const std::string& file = {});

// A token carrying `data`, signed with `secret` for `salt`, stamped now. Throws token_error if
// the secret is shorter than 32 bytes.
std::string sign_token(std::string_view secret, std::string_view salt, std::string_view data);
// The data of `token` if it was signed with `secret` for `salt` no longer than `max_age` ago;
// nullopt if it is malformed, tampered with, for another salt, or expired.
std::optional<std::string> verify_token(std::string_view secret, std::string_view salt, std::string_view token,
                                        std::chrono::seconds max_age);

// A deterministic tag of `data` for `salt` (base64url of an HMAC-SHA256 with a key derived from
// both): the same inputs give the same tag, and nobody without the secret can make one. For values
// checked by recomputing them, such as a page's CSRF token. Throws token_error for a short secret.
std::string tag(std::string_view secret, std::string_view salt, std::string_view data);

// base64url without padding (web::base64_decode, http.h, reads it back).
std::string base64url_encode(std::string_view bytes);

}  // namespace athanor::live
