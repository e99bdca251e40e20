// athanor::dist::cookie — the shared secret of an Erlang cluster, and where erl finds it.
//
//   loaded_cookie c = load_cookie(settings.cookie);   // given, else the cookie files, else a new one
//   handshake_settings mine{.name = me, .creation = creation, .cookie = c.cookie};
//
// load_cookie looks where `erl` looks, in the same order (OTP's auth.erl):
//   1. the cookie given explicitly (the node's settings, ATHANOR_COOKIE: the caller reads those);
//   2. $HOME/.erlang.cookie;
//   3. $XDG_CONFIG_HOME/erlang/.erlang.cookie ($HOME/.config/erlang/.erlang.cookie when
//      XDG_CONFIG_HOME is unset or empty);
//   4. none of them: it creates $HOME/.erlang.cookie holding 20 random upper-case letters (from
//      OpenSSL's CSPRNG), mode 0400, as erl does, so that an Athanor node and an erl started
//      later by the same user share it.
// The first file that exists is used, and a bad one is an error (never a reason to look
// further): it must be a regular file readable by its owner only ((mode & 077) == 0, like erl:
// "must be accessible by owner only"), and its text follows erl's rule: the cookie is the
// first line, printable ASCII (0x20..0x7E, spaces kept, trailing ones too), without its
// "\n" or "\r\n"; after it only blank text (spaces, CR, LF) may follow, anything else is
// "bad characters in cookie". An empty cookie is an error. Errors name the file, never the
// cookie.
//
// The environment is a parameter (cookie_environment), so tests point HOME at a temporary
// directory and never touch the developer's own ~/.erlang.cookie.
//
// The cookie is never logged: `cookie` has no operator<< and no fmt formatter, and its bytes
// are reachable only through reveal(), which the digest calls. Its memory is wiped when it is
// destroyed.
//
// Thread-safety: cookie is a value; const member functions may be called concurrently. The
// functions share no state; two processes racing to create the same cookie file both end up
// with the one that was written first.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace athanor::dist {

// Thrown when no cookie can be had: a bad given cookie, a cookie file with loose permissions,
// bad characters or no cookie in it, a file that cannot be read or created. what() names the
// file and the rule; it never contains the cookie.
class cookie_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A cookie: non-empty printable ASCII (0x20..0x7E). Erlang allows any atom as a cookie, but
// files can only hold printable text and the digest uses the atom's Latin-1 bytes, so
// printable ASCII is what every node can share.
class cookie {
 public:
  // Throws cookie_error if `text` is empty or holds a byte outside 0x20..0x7E.
  explicit cookie(std::string_view text);
  cookie(const cookie& other) : text_(other.text_) {}
  cookie(cookie&& other) noexcept;
  cookie& operator=(const cookie& other);
  cookie& operator=(cookie&& other) noexcept;
  ~cookie();

  // The secret itself, for the handshake digest. Do not log it, print it or send it anywhere.
  std::string_view reveal() const noexcept { return text_; }

 private:
  void wipe() noexcept;
  std::string text_;
};

// Where load_cookie looks. Empty optionals and empty strings both mean "not set".
struct cookie_environment {
  std::optional<std::string> home;             // $HOME
  std::optional<std::string> xdg_config_home;  // $XDG_CONFIG_HOME

  // The calling process's HOME and XDG_CONFIG_HOME (getenv).
  static cookie_environment of_this_process();
};

enum class cookie_source : std::uint8_t {
  given,              // passed to load_cookie
  home_file,          // $HOME/.erlang.cookie
  xdg_file,           // $XDG_CONFIG_HOME/erlang/.erlang.cookie
  created_home_file,  // $HOME/.erlang.cookie, created by this call
};

struct loaded_cookie {
  dist::cookie cookie;
  cookie_source source;
  std::string file;  // the file read or created; empty for a given cookie
};

// The cookie as `erl` would find it (see the file comment). `given`: the explicitly configured
// cookie, or nullopt to look at the files. Throws cookie_error: a bad given cookie; a bad
// cookie file; HOME unset when a file is needed; a file that cannot be created.
loaded_cookie load_cookie(std::optional<std::string_view> given,
                          const cookie_environment& env = cookie_environment::of_this_process());

// Reads one cookie file with the rules above. Throws cookie_error (naming `path`) if it is
// missing, not a regular file, accessible by group or others, larger than 64 KiB, or its text
// is not a cookie.
cookie read_cookie_file(const std::string& path);

// The cookie in a cookie file's text (erl's rule, see the file comment). `file` is only used
// in the error message. Throws cookie_error ("bad characters in cookie", "no cookie").
cookie parse_cookie_file_text(std::string_view text, std::string_view file);

// Creates `path` (which must not exist) holding 20 random upper-case letters, mode 0400, and
// returns that cookie. Throws cookie_error if the file exists or cannot be written, or if the
// CSPRNG fails.
cookie create_cookie_file(const std::string& path);

}  // namespace athanor::dist
