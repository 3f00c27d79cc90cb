#include "common/strings.h"

#include <gtest/gtest.h>

#include "common/clock.h"

namespace sg {
namespace {

TEST(StringsTest, ParseHostPortTakesNamesIpv4AndBracketedIpv6) {
  auto a = ParseHostPort("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  EXPECT_EQ(a->ToString(), "127.0.0.1:8080");
  auto b = ParseHostPort("[::1]:9");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 9);
  EXPECT_EQ(b->ToString(), "[::1]:9");
  auto c = ParseHostPort("model-server.local:65535");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "model-server.local");
  EXPECT_EQ(c->port, 65535);
  EXPECT_EQ(ParseHostPort("0.0.0.0:0")->port, 0);
}

TEST(StringsTest, ParseHostPortRefusesWhatIsNotOneHostAndOnePort) {
  for (const char* bad : {"host", "host:", ":80", "host:99999", "host:8x", "host:-1", "host: 80",
                          "::1:80", "[::1]", "[::1]80", "[::1:80", "[]:80", ""}) {
    EXPECT_FALSE(ParseHostPort(bad)) << bad;
  }
}

TEST(StringsTest, FixedPrintsTheGivenDecimals) {
  EXPECT_EQ(Fixed(2.5, 0), "2");  // printf's rounding: half to even
  EXPECT_EQ(Fixed(3.14159, 2), "3.14");
  EXPECT_EQ(Fixed(12, 1), "12.0");
  EXPECT_EQ(Fixed(-0.005, 3), "-0.005");
}

TEST(StringsTest, FormatUtcWritesTheCalendarInUtc) {
  // 1795000000 s is 2026-11-18 11:06:40 UTC (GNU date -u -d @1795000000).
  EXPECT_EQ(FormatUtc(1795000000, "%Y-%m-%dT%H:%M:%SZ"), "2026-11-18T11:06:40Z");
  EXPECT_EQ(FormatUtc(1795000000, "%Y%m%dT%H%M%SZ"), "20261118T110640Z");
  EXPECT_EQ(FormatUtc(0, "%Y-%m-%d %H:00Z"), "1970-01-01 00:00Z");
  EXPECT_EQ(FormatUtcMicros(1795000000'123456), "2026-11-18T11:06:40.123Z");
}

TEST(ClockTest, ToMicrosTruncatesAndNowUnixMicrosIsTheSystemClock) {
  EXPECT_EQ(ToMicros(std::chrono::nanoseconds(2999)), 2);
  EXPECT_EQ(ToMicros(std::chrono::milliseconds(3)), 3000);
  EXPECT_EQ(ToMicros(std::chrono::steady_clock::duration(std::chrono::seconds(1))), 1000000);
  const int64_t before = ToMicros(std::chrono::system_clock::now().time_since_epoch());
  const int64_t now = NowUnixMicros();
  const int64_t after = ToMicros(std::chrono::system_clock::now().time_since_epoch());
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  EXPECT_GT(now, int64_t{1'600'000'000} * 1'000'000);  // after September 2020
}

}  // namespace
}  // namespace sg
