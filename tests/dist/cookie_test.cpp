// Cookie loading as erl does it, in temporary directories: HOME and XDG_CONFIG_HOME are passed
// in, never read from the environment, so the developer's own ~/.erlang.cookie is never touched.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "athanor/dist/cookie.h"

namespace athanor::dist {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system's temporary directory, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "athanor-cookie-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

void write_file(const fs::path& p, const std::string& text, mode_t mode) {
  fs::create_directories(p.parent_path());
  {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
  }
  ASSERT_EQ(::chmod(p.c_str(), mode), 0);
}

mode_t mode_of(const fs::path& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The message of the cookie_error that `f` throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const cookie_error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Cookie, GivenCookieComesFirst) {
  temp_dir home;
  write_file(home.path() / ".erlang.cookie", "FROMFILE", 0400);
  loaded_cookie c = load_cookie("given-secret", cookie_environment{home.str(), std::nullopt});
  EXPECT_EQ(c.cookie.reveal(), "given-secret");
  EXPECT_EQ(c.source, cookie_source::given);
  EXPECT_TRUE(c.file.empty());
}

TEST(Cookie, GivenCookieMustBeNonEmptyPrintableAscii) {
  cookie_environment env{std::nullopt, std::nullopt};
  EXPECT_FALSE(error_of([&] { load_cookie("", env); }).empty());
  EXPECT_FALSE(error_of([&] { load_cookie(std::string_view("a\nb"), env); }).empty());
  EXPECT_THROW(cookie(""), cookie_error);
  EXPECT_THROW(cookie("tab\there"), cookie_error);
  EXPECT_THROW(cookie("caf\xc3\xa9"), cookie_error);
  EXPECT_EQ(cookie("with spaces ~!").reveal(), "with spaces ~!");
}

TEST(Cookie, ReadsHomeFile) {
  temp_dir home;
  write_file(home.path() / ".erlang.cookie", "KNIEVGKNYMYCKSQSDMGZ", 0400);
  loaded_cookie c = load_cookie(std::nullopt, cookie_environment{home.str(), std::nullopt});
  EXPECT_EQ(c.cookie.reveal(), "KNIEVGKNYMYCKSQSDMGZ");
  EXPECT_EQ(c.source, cookie_source::home_file);
  EXPECT_EQ(c.file, (home.path() / ".erlang.cookie").string());
}

TEST(Cookie, FileTextIsTheFirstLineWithTrailingSpacesKept) {
  EXPECT_EQ(parse_cookie_file_text("abc\n", "f").reveal(), "abc");
  EXPECT_EQ(parse_cookie_file_text("abc\r\n", "f").reveal(), "abc");
  EXPECT_EQ(parse_cookie_file_text("a b c  \n", "f").reveal(), "a b c  ");
  EXPECT_EQ(parse_cookie_file_text("abc\n\n  \r\n\n", "f").reveal(), "abc");  // blank lines after: as erl
}

TEST(Cookie, FileTextWithBadCharactersIsRefusedWithoutShowingTheCookie) {
  for (std::string text : {std::string("SECRETXYZ\nsecond line"), std::string("SECRET\tXYZ"), std::string("SECRETXYZ\0", 10),
                           std::string("SECRETXYZ\n\tx"), std::string("SECRET\xc3\xa9XYZ")}) {
    std::string e = error_of([&] { parse_cookie_file_text(text, "/some/.erlang.cookie"); });
    EXPECT_TRUE(contains(e, "bad characters")) << e;
    EXPECT_TRUE(contains(e, "/some/.erlang.cookie")) << e;
    EXPECT_FALSE(contains(e, "SECRET")) << e;
  }
}

TEST(Cookie, EmptyCookieFileIsAnError) {
  temp_dir home;
  for (std::string text : {"", "\n", "\r\n\n", "\n\nabc"}) {  // all const char*
    write_file(home.path() / ".erlang.cookie", text, 0400);
    std::string e = error_of([&] { load_cookie(std::nullopt, cookie_environment{home.str(), std::nullopt}); });
    EXPECT_FALSE(e.empty()) << "text: '" << text << "'";
  }
}

TEST(Cookie, RefusesFilesOthersCanRead) {
  temp_dir home;
  fs::path file = home.path() / ".erlang.cookie";
  for (mode_t loose : {0644, 0640, 0604, 0440, 0600 | 0001}) {
    write_file(file, "SECRETXYZ", loose);
    std::string e = error_of([&] { load_cookie(std::nullopt, cookie_environment{home.str(), std::nullopt}); });
    EXPECT_TRUE(contains(e, "must be accessible by owner only")) << std::oct << loose << ": " << e;
    EXPECT_TRUE(contains(e, file.string())) << e;
    EXPECT_FALSE(contains(e, "SECRET")) << e;
  }
  write_file(file, "SECRETXYZ", 0600);
  EXPECT_EQ(load_cookie(std::nullopt, cookie_environment{home.str(), std::nullopt}).cookie.reveal(), "SECRETXYZ");
}

TEST(Cookie, RefusesADirectoryOrAFifo) {
  temp_dir home;
  fs::create_directories(home.path() / ".erlang.cookie");
  ::chmod((home.path() / ".erlang.cookie").c_str(), 0700);
  EXPECT_TRUE(contains(error_of([&] { load_cookie(std::nullopt, cookie_environment{home.str(), std::nullopt}); }),
                       "not a regular file"));
  temp_dir home2;
  ASSERT_EQ(::mkfifo((home2.path() / ".erlang.cookie").c_str(), 0600), 0);
  // Opening must not block on the FIFO waiting for a writer.
  EXPECT_TRUE(contains(error_of([&] { load_cookie(std::nullopt, cookie_environment{home2.str(), std::nullopt}); }),
                       "not a regular file"));
}

TEST(Cookie, FallsBackToXdgConfigHome) {
  temp_dir home, xdg;
  write_file(xdg.path() / "erlang" / ".erlang.cookie", "XDGCOOKIE\n", 0400);
  loaded_cookie c = load_cookie(std::nullopt, cookie_environment{home.str(), xdg.str()});
  EXPECT_EQ(c.cookie.reveal(), "XDGCOOKIE");
  EXPECT_EQ(c.source, cookie_source::xdg_file);
  EXPECT_EQ(c.file, (xdg.path() / "erlang" / ".erlang.cookie").string());
  EXPECT_FALSE(fs::exists(home.path() / ".erlang.cookie"));  // found, so nothing was created
}

TEST(Cookie, XdgDefaultsToHomeDotConfig) {
  temp_dir home;
  write_file(home.path() / ".config" / "erlang" / ".erlang.cookie", "DOTCONFIG", 0400);
  for (std::optional<std::string> xdg : {std::optional<std::string>(), std::optional<std::string>("")}) {
    loaded_cookie c = load_cookie(std::nullopt, cookie_environment{home.str(), xdg});
    EXPECT_EQ(c.cookie.reveal(), "DOTCONFIG");
    EXPECT_EQ(c.source, cookie_source::xdg_file);
  }
}

TEST(Cookie, HomeFileComesBeforeXdgAndABadOneIsNotSkipped) {
  temp_dir home, xdg;
  write_file(xdg.path() / "erlang" / ".erlang.cookie", "XDGCOOKIE", 0400);
  write_file(home.path() / ".erlang.cookie", "HOMECOOKIE", 0400);
  EXPECT_EQ(load_cookie(std::nullopt, cookie_environment{home.str(), xdg.str()}).cookie.reveal(), "HOMECOOKIE");
  write_file(home.path() / ".erlang.cookie", "HOMECOOKIE", 0644);
  EXPECT_THROW(load_cookie(std::nullopt, cookie_environment{home.str(), xdg.str()}), cookie_error);
}

TEST(Cookie, CreatesARandomOwnerOnlyCookieWhenThereIsNone) {
  temp_dir home;
  loaded_cookie c = load_cookie(std::nullopt, cookie_environment{home.str(), std::nullopt});
  fs::path file = home.path() / ".erlang.cookie";
  EXPECT_EQ(c.source, cookie_source::created_home_file);
  EXPECT_EQ(c.file, file.string());
  EXPECT_EQ(mode_of(file), 0400);
  ASSERT_EQ(c.cookie.reveal().size(), 20u);
  for (char ch : c.cookie.reveal()) EXPECT_TRUE(ch >= 'A' && ch <= 'Z') << ch;
  EXPECT_EQ(read_all(file), c.cookie.reveal());  // no newline, as erl writes it

  // The next start reads the same cookie.
  loaded_cookie again = load_cookie(std::nullopt, cookie_environment{home.str(), std::nullopt});
  EXPECT_EQ(again.source, cookie_source::home_file);
  EXPECT_EQ(again.cookie.reveal(), c.cookie.reveal());
}

TEST(Cookie, CreatedCookiesDiffer) {
  temp_dir a, b;
  std::string ca(create_cookie_file((a.path() / "c").string()).reveal());
  std::string cb(create_cookie_file((b.path() / "c").string()).reveal());
  EXPECT_NE(ca, cb);  // 26^20 possibilities: equal only if the CSPRNG is broken
  EXPECT_THROW(create_cookie_file((a.path() / "c").string()), cookie_error);  // never overwrites
}

TEST(Cookie, NeedsHomeWhenNotGiven) {
  for (std::optional<std::string> home : {std::optional<std::string>(), std::optional<std::string>("")}) {
    std::string e = error_of([&] { load_cookie(std::nullopt, cookie_environment{home, std::nullopt}); });
    EXPECT_TRUE(contains(e, "HOME")) << e;
  }
}

TEST(Cookie, CreationFailureNamesTheFile) {
  temp_dir tmp;
  std::string missing_home = (tmp.path() / "no" / "such" / "home").string();
  std::string e = error_of([&] { load_cookie(std::nullopt, cookie_environment{missing_home, std::nullopt}); });
  EXPECT_TRUE(contains(e, missing_home + "/.erlang.cookie")) << e;
}

TEST(Cookie, CopiesAndMovesKeepTheSecret) {
  cookie a("abc");
  cookie b = a;
  cookie c = std::move(a);
  EXPECT_EQ(b.reveal(), "abc");
  EXPECT_EQ(c.reveal(), "abc");
  b = cookie("xyz");
  EXPECT_EQ(b.reveal(), "xyz");
}

}  // namespace
}  // namespace athanor::dist
