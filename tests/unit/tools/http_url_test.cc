#include "tools/load/http_url.h"

#include <gtest/gtest.h>

namespace sg::load {
namespace {

TEST(HttpUrlTest, ParsesHostPortAndTarget) {
  std::string error;
  auto url = ParseHttpUrl("http://127.0.0.1:8080/predictions/fashion?x=1", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, "8080");
  EXPECT_EQ(url->target, "/predictions/fashion?x=1");
  EXPECT_EQ(url->HostHeader(), "127.0.0.1:8080");
  EXPECT_EQ(url->Normalized(), "http://127.0.0.1:8080/predictions/fashion?x=1");
}

TEST(HttpUrlTest, DefaultsPortAndTarget) {
  std::string error;
  auto url = ParseHttpUrl("http://example.test", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->port, "80");
  EXPECT_EQ(url->target, "/");
  EXPECT_EQ(url->HostHeader(), "example.test");
  EXPECT_EQ(url->Normalized(), "http://example.test/");
  url = ParseHttpUrl("http://example.test?q=1", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->target, "/?q=1");
  // An explicit :80 is not sent in Host (curl) but stays in the URL (requests).
  url = ParseHttpUrl("http://example.test:80/a", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->HostHeader(), "example.test");
  EXPECT_EQ(url->Normalized(), "http://example.test:80/a");
  url = ParseHttpUrl("http://h:/a", &error);  // empty port: the default
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->port, "80");
}

TEST(HttpUrlTest, Ipv6LiteralsKeepTheirBracketsInHost) {
  std::string error;
  auto url = ParseHttpUrl("http://[::1]:8080/x", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "::1");  // what the resolver takes
  EXPECT_EQ(url->port, "8080");
  EXPECT_EQ(url->target, "/x");
  EXPECT_EQ(url->HostHeader(), "[::1]:8080");  // as curl sends it
  EXPECT_EQ(url->Normalized(), "http://[::1]:8080/x");
  url = ParseHttpUrl("http://[2001:db8::7]/?q", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "2001:db8::7");
  EXPECT_EQ(url->HostHeader(), "[2001:db8::7]");
  EXPECT_EQ(url->target, "/?q");
}

TEST(HttpUrlTest, SchemeAndHostAreCaseInsensitiveTargetIsKeptExactly) {
  std::string error;
  auto url = ParseHttpUrl("HTTP://Example.TEST:0081/A%2Fb/../C?Q=%20x&y=#frag", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "example.test");
  EXPECT_EQ(url->port, "81");
  EXPECT_EQ(url->target, "/A%2Fb/../C?Q=%20x&y=");  // no normalisation, fragment dropped
  EXPECT_EQ(url->HostHeader(), "example.test:81");
  EXPECT_TRUE(ParseHttpUrl("hTtP://h/", &error)) << error;
}

TEST(HttpUrlTest, RejectsWhatItCannotServeWithTheReason) {
  std::string error;
  EXPECT_FALSE(ParseHttpUrl("https://h/", &error));
  EXPECT_NE(error.find("plain HTTP"), std::string::npos) << error;
  EXPECT_NE(error.find("\"https://h/\""), std::string::npos) << error;
  EXPECT_FALSE(ParseHttpUrl("HTTPS://h/", &error));
  EXPECT_NE(error.find("plain HTTP"), std::string::npos) << error;
  EXPECT_FALSE(ParseHttpUrl("ftp://h/", &error));
  EXPECT_NE(error.find("http://"), std::string::npos) << error;
  EXPECT_FALSE(ParseHttpUrl("http://user:pw@h/", &error));
  EXPECT_NE(error.find("user info"), std::string::npos) << error;
  EXPECT_FALSE(ParseHttpUrl("http://@h/", &error));
  EXPECT_NE(error.find("user info"), std::string::npos) << error;
  for (const char* bad : {"http://h:0/", "http://h:70000/", "http://h:99999999999999999999/"}) {
    EXPECT_FALSE(ParseHttpUrl(bad, &error)) << bad;
    EXPECT_NE(error.find("port must be 1-65535"), std::string::npos) << error;
  }
  for (const char* bad : {"http://h:12x/", "http://[::1/", "http://a b/", "127.0.0.1:8080/x", ""}) {
    EXPECT_FALSE(ParseHttpUrl(bad, &error)) << bad;
    EXPECT_NE(error.find("http://"), std::string::npos) << error;
  }
  for (const char* bad : {"http://:80/", "http:///x", "http:/x", "http:x"}) {
    EXPECT_FALSE(ParseHttpUrl(bad, &error)) << bad;
    EXPECT_NE(error.find("no host"), std::string::npos) << bad << ": " << error;
  }
  EXPECT_FALSE(ParseHttpUrl("http://[v1.x]/", &error));
  EXPECT_NE(error.find("IPv6"), std::string::npos) << error;
}

}  // namespace
}  // namespace sg::load
