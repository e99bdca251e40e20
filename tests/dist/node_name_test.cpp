// Node names: the two strictness levels, naming modes, and what --sname / --name mean.
#include <gtest/gtest.h>

#include <string>

#include "athanor/dist/node_name.h"

namespace athanor::dist {
namespace {

TEST(NodeName, ParsesAliveAndHost) {
  node_name n = node_name::parse("cpp_1-x@vm");
  EXPECT_EQ(n.full(), "cpp_1-x@vm");
  EXPECT_EQ(n.alive(), "cpp_1-x");
  EXPECT_EQ(n.host(), "vm");
  EXPECT_EQ(n.mode(), naming_mode::short_names);
}

TEST(NodeName, DefaultIsNonodeAtNohost) {
  node_name n;
  EXPECT_EQ(n.full(), "nonode@nohost");
  EXPECT_EQ(n.alive(), "nonode");
  EXPECT_EQ(n.host(), "nohost");
}

TEST(NodeName, RefusesNamesThatAreNotAliveAtHost) {
  for (const char* bad : {"", "cpp", "@vm", "cpp@", "a@b@c", "a.b@vm", "a b@vm", "é@vm", "a@v m", "a@vm..x", "a@.vm",
                          "a@vm.", "a@v/m"}) {
    EXPECT_THROW(node_name::parse(bad), node_name_error) << bad;
  }
}

TEST(NodeName, LimitsTheFullNameTo255Bytes) {
  std::string host = "@vm";
  std::string longest = std::string(255 - host.size(), 'a') + host;
  EXPECT_EQ(node_name::parse(longest).full().size(), 255u);
  EXPECT_THROW(node_name::parse("a" + longest), node_name_error);
  EXPECT_EQ(node_name::parse_peer(longest).full().size(), 255u);
  EXPECT_THROW(node_name::parse_peer("a" + longest), node_name_error);
}

TEST(NodeName, PeerNamesFollowOtpsLooserRule) {
  // dist_util:is_node_name accepts any non-empty parts around a single '@'.
  EXPECT_EQ(node_name::parse_peer("odd.name+x@host").alive(), "odd.name+x");
  EXPECT_THROW(node_name::parse("odd.name+x@host"), node_name_error);
  for (const char* bad : {"", "noat", "@h", "a@", "a@b@c", "a b@h", "a\n@h", "a@h\x7f"}) {
    EXPECT_THROW(node_name::parse_peer(bad), node_name_error) << bad;
  }
}

TEST(NodeName, TheHostDecidesTheNamingMode) {
  EXPECT_EQ(host_naming_mode("vm"), naming_mode::short_names);
  EXPECT_EQ(host_naming_mode("localhost"), naming_mode::short_names);
  EXPECT_EQ(host_naming_mode("vm.example.com"), naming_mode::long_names);
  EXPECT_EQ(host_naming_mode("127.0.0.1"), naming_mode::long_names);
  EXPECT_EQ(host_naming_mode("::1"), naming_mode::long_names);
  EXPECT_EQ(host_naming_mode("fe80::1:2"), naming_mode::long_names);
  EXPECT_EQ(node_name::parse("a@::1").mode(), naming_mode::long_names);
}

TEST(NodeName, MixedModesAreNotTheSame) {
  EXPECT_TRUE(same_naming_mode(node_name::parse("a@vm"), node_name::parse("b@other")));
  EXPECT_TRUE(same_naming_mode(node_name::parse("a@1.2.3.4"), node_name::parse("b@x.example.com")));
  EXPECT_FALSE(same_naming_mode(node_name::parse("a@vm"), node_name::parse("b@127.0.0.1")));
  EXPECT_FALSE(same_naming_mode(node_name::parse("a@vm.example.com"), node_name::parse("b@vm")));
}

TEST(NodeName, ComparesAsByteStrings) {
  EXPECT_LT(node_name::parse("a@vm"), node_name::parse("b@vm"));
  EXPECT_LT(node_name::parse("Z@vm"), node_name::parse("a@vm"));  // 'Z' (0x5A) < 'a' (0x61)
  EXPECT_LT(node_name::parse("a@vm"), node_name::parse("a_@vm"));  // '@' (0x40) < '_' (0x5F)
  EXPECT_EQ(node_name::parse("a@vm"), node_name::parse_peer("a@vm"));
}

TEST(NodeName, SnameAddsThisHostsShortName) {
  EXPECT_EQ(node_name::from_sname("cpp", "vm").full(), "cpp@vm");
  EXPECT_EQ(node_name::from_sname("cpp@localhost", "vm").full(), "cpp@localhost");
  EXPECT_THROW(node_name::from_sname("cpp@vm.example.com", "vm"), node_name_error);
  EXPECT_THROW(node_name::from_sname("cpp@127.0.0.1", "vm"), node_name_error);
  EXPECT_THROW(node_name::from_sname("c.pp", "vm"), node_name_error);
  EXPECT_THROW(node_name::from_sname("cpp", ""), node_name_error);
}

TEST(NodeName, SnameOnThisHostIsWhatHostnameSays) {
  std::string host = this_host_short_name();
  ASSERT_FALSE(host.empty());
  EXPECT_EQ(host.find('.'), std::string::npos);
  node_name n = node_name::from_sname("cpp");
  EXPECT_EQ(n.host(), host);
  EXPECT_EQ(n.mode(), naming_mode::short_names);
}

TEST(NodeName, NameAddsThisHostsFullyQualifiedName) {
  EXPECT_EQ(node_name::from_name("cpp", "vm.example.com").full(), "cpp@vm.example.com");
  EXPECT_EQ(node_name::from_name("cpp@10.0.0.7", std::nullopt).full(), "cpp@10.0.0.7");
  EXPECT_EQ(node_name::from_name("cpp@::1", std::nullopt).full(), "cpp@::1");
  EXPECT_EQ(node_name::from_name("cpp@db.example.com").full(), "cpp@db.example.com");
  // A host that is neither dotted nor an IP address is no long name.
  EXPECT_THROW(node_name::from_name("cpp@vm", std::nullopt), node_name_error);
  EXPECT_THROW(node_name::from_name("cpp", "vm"), node_name_error);
}

TEST(NodeName, NameWithoutADomainFailsAndSaysWhatToDo) {
  try {
    node_name::from_name("cpp", std::nullopt);
    FAIL() << "a long name needs a domain";
  } catch (const node_name_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("no domain"), std::string::npos) << what;
    EXPECT_NE(what.find("cpp@host.example.com"), std::string::npos) << what;
  }
}

TEST(NodeName, NameOnThisHostAgreesWithThisHostsFqdn) {
  std::optional<std::string> fqdn = this_host_fqdn();
  if (fqdn) {
    EXPECT_NE(fqdn->find('.'), std::string::npos);
    EXPECT_EQ(node_name::from_name("cpp").host(), *fqdn);
  } else {
    EXPECT_THROW(node_name::from_name("cpp"), node_name_error);
  }
}

}  // namespace
}  // namespace athanor::dist
