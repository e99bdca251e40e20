// athanor/version.h against the version CMake's project() declares (passed in by
// tests/package/CMakeLists.txt): the header that code compiles against must be the one generated
// from it, not a stale copy earlier on the include path.
#include <athanor/version.h>

#include <gtest/gtest.h>

#include <string>

TEST(Version, HeaderIsTheProjectVersion) {
  EXPECT_EQ(std::string(ATHANOR_VERSION_STRING), ATHANOR_EXPECTED_VERSION);
  EXPECT_EQ(athanor::version(), ATHANOR_EXPECTED_VERSION);
  EXPECT_EQ(ATHANOR_VERSION_MAJOR, ATHANOR_EXPECTED_MAJOR);
  EXPECT_EQ(ATHANOR_VERSION_MINOR, ATHANOR_EXPECTED_MINOR);
  EXPECT_EQ(ATHANOR_VERSION_PATCH, ATHANOR_EXPECTED_PATCH);
}

TEST(Version, PartsAgree) {
  // The string is MAJOR.MINOR.PATCH (a release's tag is v + the string), and the number orders them.
  EXPECT_EQ(athanor::version(), std::to_string(athanor::version_major) + "." + std::to_string(athanor::version_minor) +
                                    "." + std::to_string(athanor::version_patch));
  EXPECT_EQ(athanor::version_number, athanor::version_major * 10000 + athanor::version_minor * 100 + athanor::version_patch);
  static_assert(ATHANOR_VERSION == athanor::version_number);
  static_assert(athanor::version().size() >= 5);
}
