#include "gateway/admin_guard.h"

#include <gtest/gtest.h>

namespace sg::gateway {
namespace {

constexpr uint16_t kPort = 9901;

TEST(AdminGuardTest, LoopbackNamesWithTheAdminPortOrNoneAreAllowed) {
  AdminConfig config;
  AdminGuard guard(config, kPort);
  for (const char* host : {"localhost", "LOCALHOST:9901", "127.0.0.1:9901", "127.0.0.1", "[::1]",
                           "[::1]:9901", " localhost:9901 "}) {
    EXPECT_TRUE(guard.HostAllowed(host)) << host;
    EXPECT_FALSE(guard.Check("/admin/config", host, std::nullopt)) << host;
  }
}

TEST(AdminGuardTest, OtherHostsAreRefusedWith421) {
  // A page on evil.example whose name was re-bound to 127.0.0.1 sends its own name.
  AdminConfig config;
  AdminGuard guard(config, kPort);
  for (const char* host : {"evil.example", "evil.example:9901", "localhost:80", "127.0.0.1:99010",
                           "127.0.0.1:", "[::1", "[::1]x", "localhost.evil.example",
                           "127.0.0.2:9901", "", "[::2]:9901"}) {
    EXPECT_FALSE(guard.HostAllowed(host)) << host;
    auto refusal = guard.Check("/healthz", host, std::nullopt);
    ASSERT_TRUE(refusal) << host;
    EXPECT_EQ(refusal->status, 421);
  }
  // No Host (or two: the caller passes none) is refused too.
  auto none = guard.Check("/metrics", std::nullopt, std::nullopt);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 421);
}

TEST(AdminGuardTest, ConfiguredHostsReplaceTheDefaultsAndStarAllowsAny) {
  AdminConfig config;
  config.allowed_hosts = {"gw.internal"};
  AdminGuard guard(config, kPort);
  EXPECT_TRUE(guard.HostAllowed("GW.internal:9901"));
  EXPECT_FALSE(guard.HostAllowed("localhost:9901"));
  config.allowed_hosts = {"*"};
  AdminGuard any(config, kPort);
  EXPECT_TRUE(any.HostAllowed("10.1.2.3:9901"));
  EXPECT_FALSE(any.HostAllowed("10.1.2.3:9902"));  // the port is still the listener's
}

TEST(AdminGuardTest, WithATokenEveryPathButHealthNeedsTheBearerToken) {
  AdminConfig config;
  config.token = "0123456789abcdef-secret";
  AdminGuard guard(config, kPort);
  const std::string_view host = "127.0.0.1:9901";
  // Probes need no token.
  EXPECT_FALSE(guard.Check("/healthz", host, std::nullopt));
  EXPECT_FALSE(guard.Check("/readyz", host, std::nullopt));
  for (const char* path : {"/metrics", "/admin/config", "/admin/routes/r/mirrors/0", "/other"}) {
    auto missing = guard.Check(path, host, std::nullopt);
    ASSERT_TRUE(missing) << path;
    EXPECT_EQ(missing->status, 401);
    EXPECT_EQ(missing->www_authenticate, "Bearer realm=\"shadowgate-admin\"");
  }
  for (const char* authorization :
       {"Bearer 0123456789abcdef-secreT", "Bearer 0123456789abcdef-secret2",
        "Bearer 0123456789abcdef", "Bearer ",
        "Basic MDEyMzQ1Njc4OWFiY2RlZi1zZWNyZXQ=", "0123456789abcdef-secret", ""}) {
    auto wrong = guard.Check("/admin/config", host, authorization);
    ASSERT_TRUE(wrong) << authorization;
    EXPECT_EQ(wrong->status, 401);
    EXPECT_EQ(wrong->www_authenticate,
              "Bearer realm=\"shadowgate-admin\", error=\"invalid_token\"");
  }
  EXPECT_FALSE(guard.Check("/admin/config", host, "Bearer 0123456789abcdef-secret"));
  EXPECT_FALSE(guard.Check("/admin/config", host, "bearer  0123456789abcdef-secret "));
  // The Host is checked first: the right token does not open it to another name.
  auto rebound =
      guard.Check("/admin/config", "evil.example:9901", "Bearer 0123456789abcdef-secret");
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 421);
}

TEST(AdminGuardTest, ConstantTimeEqualsComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("ab\0", 3), "ab"));
  EXPECT_FALSE(ConstantTimeEquals("", "abc"));
}

}  // namespace
}  // namespace sg::gateway
