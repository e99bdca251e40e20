// Finding, reading and creating the cookie as erl does (see cookie.h). A cookie file is opened
// first and checked through the open descriptor (fstat), so the file checked is the file read,
// whatever happens to the path in between. It is opened non-blocking so that a FIFO planted at
// the path cannot hang the node before fstat refuses it.
#include "athanor/dist/cookie.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace athanor::dist {

namespace {

constexpr std::size_t kMaxCookieFileBytes = 64 * 1024;
constexpr std::size_t kCreatedCookieLetters = 20;  // as erl

bool is_printable(unsigned char c) noexcept { return c >= 0x20 && c <= 0x7E; }

std::string errno_text(int e) { return std::strerror(e); }

// Closes a descriptor when the scope ends.
struct fd_closer {
  int fd;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};

std::optional<std::string> non_empty(const std::optional<std::string>& v) {
  if (v && !v->empty()) return v;
  return std::nullopt;
}

// Creates `path` exclusively; nullopt if it already exists (another process won the race).
std::optional<cookie> try_create_cookie_file(const std::string& path) {
  // 26 letters: bytes >= 234 (= 26 * 9) are dropped so every letter is equally likely.
  std::string letters;
  unsigned char buf[64];
  while (letters.size() < kCreatedCookieLetters) {
    if (RAND_bytes(buf, sizeof buf) != 1) throw cookie_error("cannot create cookie file " + path + ": the CSPRNG failed");
    for (unsigned char b : buf)
      if (b < 234 && letters.size() < kCreatedCookieLetters) letters.push_back(char('A' + b % 26));
  }
  OPENSSL_cleanse(buf, sizeof buf);
  cookie result(letters);
  OPENSSL_cleanse(letters.data(), letters.size());

  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
  if (fd < 0) {
    if (errno == EEXIST) return std::nullopt;
    throw cookie_error("cannot create cookie file " + path + ": " + errno_text(errno));
  }
  fd_closer closer{fd};
  std::string_view text = result.reveal();  // no newline, as erl writes it
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::unlink(path.c_str());  // a half-written cookie would be refused by every later start
      throw cookie_error("cannot write cookie file " + path + ": " + errno_text(e));
    }
    done += std::size_t(n);
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::unlink(path.c_str());
    throw cookie_error("cannot write cookie file " + path + ": " + errno_text(e));
  }
  // erl also sets the file's times to midnight, because its cookie came from a generator
  // seeded with the time; ours comes from a CSPRNG, so the times reveal nothing.
  return result;
}

}  // namespace

// ---- cookie -------------------------------------------------------------------------------------

cookie::cookie(std::string_view text) : text_(text) {
  if (text_.empty()) throw cookie_error("the cookie is empty");
  for (unsigned char c : text_)
    if (!is_printable(c)) {
      wipe();
      throw cookie_error("the cookie holds a byte outside printable ASCII (0x20..0x7E)");
    }
}

cookie::cookie(cookie&& other) noexcept : text_(std::move(other.text_)) { other.wipe(); }

cookie& cookie::operator=(const cookie& other) {
  if (this != &other) {
    wipe();
    text_ = other.text_;
  }
  return *this;
}

cookie& cookie::operator=(cookie&& other) noexcept {
  if (this != &other) {
    wipe();
    text_ = std::move(other.text_);
    other.wipe();
  }
  return *this;
}

cookie::~cookie() { wipe(); }

void cookie::wipe() noexcept {
  if (!text_.empty()) OPENSSL_cleanse(text_.data(), text_.size());
  text_.clear();
}

// ---- files --------------------------------------------------------------------------------------

cookie_environment cookie_environment::of_this_process() {
  cookie_environment env;
  if (const char* h = std::getenv("HOME")) env.home = h;
  if (const char* x = std::getenv("XDG_CONFIG_HOME")) env.xdg_config_home = x;
  return env;
}

cookie parse_cookie_file_text(std::string_view text, std::string_view file) {
  std::size_t end = 0;
  while (end < text.size() && is_printable(static_cast<unsigned char>(text[end]))) ++end;
  for (std::size_t i = end; i < text.size(); ++i)
    if (text[i] != '\n' && text[i] != '\r' && text[i] != ' ')
      throw cookie_error("bad characters in cookie file " + std::string(file) +
                         ": the cookie must be one line of printable ASCII, with nothing after it but blank lines");
  if (end == 0) throw cookie_error("no cookie in cookie file " + std::string(file) + ": its first line is empty");
  return cookie(text.substr(0, end));
}

cookie read_cookie_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) throw cookie_error("cannot read cookie file " + path + ": " + errno_text(errno));
  fd_closer closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) throw cookie_error("cannot read cookie file " + path + ": " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) throw cookie_error("cookie file " + path + " is not a regular file");
  if ((st.st_mode & 077) != 0)
    throw cookie_error("cookie file " + path + " must be accessible by owner only (chmod 400 " + path + ")");
  if (std::uint64_t(st.st_size) > kMaxCookieFileBytes)
    throw cookie_error("cookie file " + path + " is larger than 64 KiB: it is not a cookie file");

  std::string text(kMaxCookieFileBytes + 1, '\0');
  std::size_t got = 0;
  for (;;) {
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      OPENSSL_cleanse(text.data(), got);
      throw cookie_error("cannot read cookie file " + path + ": " + errno_text(e));
    }
    if (n == 0) break;
    got += std::size_t(n);
    if (got > kMaxCookieFileBytes) {  // it grew since fstat
      OPENSSL_cleanse(text.data(), got);
      throw cookie_error("cookie file " + path + " is larger than 64 KiB: it is not a cookie file");
    }
  }
  try {
    cookie c = parse_cookie_file_text(std::string_view(text).substr(0, got), path);
    OPENSSL_cleanse(text.data(), got);
    return c;
  } catch (...) {
    OPENSSL_cleanse(text.data(), got);
    throw;
  }
}

cookie create_cookie_file(const std::string& path) {
  std::optional<cookie> c = try_create_cookie_file(path);
  if (!c) throw cookie_error("cannot create cookie file " + path + ": it already exists");
  return std::move(*c);
}

loaded_cookie load_cookie(std::optional<std::string_view> given, const cookie_environment& env) {
  if (given) {
    if (given->empty()) throw cookie_error("the given cookie is empty");
    try {
      return loaded_cookie{cookie(*given), cookie_source::given, {}};
    } catch (const cookie_error&) {
      throw cookie_error("the given cookie holds a byte outside printable ASCII (0x20..0x7E)");
    }
  }
  std::optional<std::string> home = non_empty(env.home);
  if (!home)
    throw cookie_error("HOME is not set, so there is no $HOME/.erlang.cookie to read or create; give the cookie explicitly");
  std::string home_file = *home + "/.erlang.cookie";
  std::optional<std::string> xdg = non_empty(env.xdg_config_home);
  std::string xdg_file = (xdg ? *xdg : *home + "/.config") + "/erlang/.erlang.cookie";

  // A file counts as present if anything is at the path: a dangling symlink or a file we may
  // not stat is then reported by read_cookie_file, naming it, instead of being skipped.
  auto exists = [](const std::string& p) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) {
      if (::lstat(p.c_str(), &st) == 0) return true;  // a dangling symlink
      return false;
    }
    return true;  // EACCES and the like: let the read report it
  };
  if (exists(home_file)) return loaded_cookie{read_cookie_file(home_file), cookie_source::home_file, home_file};
  if (exists(xdg_file)) return loaded_cookie{read_cookie_file(xdg_file), cookie_source::xdg_file, xdg_file};
  if (std::optional<cookie> created = try_create_cookie_file(home_file))
    return loaded_cookie{std::move(*created), cookie_source::created_home_file, home_file};
  // Another process created it between our look and our create: use theirs.
  return loaded_cookie{read_cookie_file(home_file), cookie_source::home_file, home_file};
}

}  // namespace athanor::dist
