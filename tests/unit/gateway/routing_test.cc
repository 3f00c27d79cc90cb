#include "gateway/routing.h"

#include <gtest/gtest.h>

namespace sg::gateway {
namespace {

RouteConfig Route(std::string prefix, std::vector<std::string> hosts = {},
                  std::vector<std::string> methods = {}) {
  RouteConfig route;
  route.path_prefix = std::move(prefix);
  route.hosts = std::move(hosts);
  route.methods = std::move(methods);
  return route;
}

TEST(RoutingTest, LongestPrefixWins) {
  RouteTable table({Route("/"), Route("/predictions/"), Route("/predictions/fashion")});
  EXPECT_EQ(table.Match("h", "/other", "GET"), 0);
  EXPECT_EQ(table.Match("h", "/predictions/x", "GET"), 1);
  EXPECT_EQ(table.Match("h", "/predictions/fashion", "GET"), 2);
  EXPECT_EQ(table.Match("h", "/predictions/fashion2", "GET"), 2);
}

TEST(RoutingTest, HostIsCaseAndPortInsensitiveAndNamedHostBeatsAnyHost) {
  RouteTable table({Route("/api"), Route("/api", {"a.example"}), Route("/x", {"b.example"})});
  EXPECT_EQ(table.Match("A.Example:8080", "/api/1", "GET"), 1);
  EXPECT_EQ(table.Match("c.example", "/api/1", "GET"), 0);
  EXPECT_EQ(table.Match("c.example", "/x", "GET"), -1);
  EXPECT_EQ(table.Match("b.example", "/x", "GET"), 2);
  EXPECT_EQ(table.Match("", "/x", "GET"), -1);
}

TEST(RoutingTest, MethodListFiltersThenFallsBack) {
  RouteTable table({Route("/"), Route("/p", {}, {"POST", "PUT"})});
  EXPECT_EQ(table.Match("h", "/p", "POST"), 1);
  EXPECT_EQ(table.Match("h", "/p", "GET"), 0);
}

TEST(RoutingTest, NoRouteAndTies) {
  RouteTable none({Route("/only")});
  EXPECT_EQ(none.Match("h", "/", "GET"), -1);
  RouteTable tie({Route("/a"), Route("/a")});
  EXPECT_EQ(tie.Match("h", "/a", "GET"), 0);
}

TEST(RoutingTest, NormalizeHost) {
  EXPECT_EQ(NormalizeHost("Example.COM:8080"), "example.com");
  EXPECT_EQ(NormalizeHost("[::1]:80"), "[::1]");
  EXPECT_EQ(NormalizeHost(" host "), "host");
  // A Host that is not one name and an optional port matches no named route.
  EXPECT_EQ(NormalizeHost("[::1"), "");
  EXPECT_EQ(NormalizeHost("[::1]x"), "");
  EXPECT_EQ(NormalizeHost(":80"), "");
}

TEST(RoutingTest, SplitHostHeaderKeepsThePortTextForTheAdminGuard) {
  auto a = SplitHostHeader("LOCALHOST:9901");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->name, "localhost");
  EXPECT_EQ(a->port, "9901");
  auto b = SplitHostHeader("[::1]");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->name, "[::1]");
  EXPECT_FALSE(b->port);
  auto c = SplitHostHeader("host:");  // an empty port is the guard's to refuse
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, "");
}

}  // namespace
}  // namespace sg::gateway
