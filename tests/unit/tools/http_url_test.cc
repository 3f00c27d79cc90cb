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
}

TEST(HttpUrlTest, DefaultsPortAndTarget) {
  std::string error;
  auto url = ParseHttpUrl("http://example.test", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->port, "80");
  EXPECT_EQ(url->target, "/");
  EXPECT_EQ(url->HostHeader(), "example.test");
  url = ParseHttpUrl("http://[::1]:9/?q", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, "9");
  EXPECT_EQ(url->target, "/?q");
}

TEST(HttpUrlTest, RejectsWhatItCannotServe) {
  std::string error;
  EXPECT_FALSE(ParseHttpUrl("https://h/", &error));
  EXPECT_NE(error.find("http://"), std::string::npos);
  EXPECT_FALSE(ParseHttpUrl("http://h:0/", &error));
  EXPECT_FALSE(ParseHttpUrl("http://h:70000/", &error));
  EXPECT_FALSE(ParseHttpUrl("http://h:12x/", &error));
  EXPECT_FALSE(ParseHttpUrl("http://:80/", &error));
  EXPECT_FALSE(ParseHttpUrl("http://user@h/", &error));
}

}  // namespace
}  // namespace sg::load
