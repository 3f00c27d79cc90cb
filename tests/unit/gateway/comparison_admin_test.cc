// ComparisonAdmin without sockets: report names, the 404/403/400/405/409 answers, and a report
// written only under report_dir.
#include "gateway/comparison_admin.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "comparator/online_comparator.h"
#include "tests/support/test_support.h"

namespace sg::gateway {
namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;

sg::http::Request Request(http::verb method, const std::string& target) {
  sg::http::Request request{method, target, 11};
  request.keep_alive(true);
  return request;
}

TEST(ComparisonAdminTest, ReportNamesAreOneDirectoryLevel) {
  for (const std::string& good :
       std::vector<std::string>{"a", "run-1", "2026.11.28_x", std::string(64, 'n')}) {
    EXPECT_TRUE(IsValidReportName(good)) << good;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "..", ".hidden", "../x", "a/b", "a\\b", "a b", "a%2Fb",
                                "é", std::string(65, 'n'), std::string("a\0b", 3)}) {
    EXPECT_FALSE(IsValidReportName(bad)) << bad;
  }
  auto name = TimestampedReportName("final");
  EXPECT_TRUE(name.starts_with("final-2")) << name;
  EXPECT_TRUE(IsValidReportName(name)) << name;
}

TEST(ComparisonAdminTest, WithoutAComparatorEverythingIs404) {
  ComparisonAdmin admin(nullptr, {});
  EXPECT_TRUE(ComparisonAdmin::Matches("/admin/comparison"));
  EXPECT_TRUE(ComparisonAdmin::Matches("/admin/comparison/report"));
  EXPECT_FALSE(ComparisonAdmin::Matches("/admin/comparisons"));
  EXPECT_EQ(admin.Handle(Request(http::verb::get, "/admin/comparison")).result_int(), 404);
  EXPECT_EQ(admin.Handle(Request(http::verb::post, "/admin/comparison/report")).result_int(), 404);
}

TEST(ComparisonAdminTest, ReportsGoUnderReportDirOnly) {
  testing::TempDir dir;
  auto online = std::make_shared<comparator::OnlineComparator>(
      std::make_shared<const comparator::CompareConfig>(), nullptr);
  ComparisonConfig config;
  ComparisonAdmin no_dir(online, config);
  EXPECT_EQ(
      no_dir.Handle(Request(http::verb::post, "/admin/comparison/report?name=a")).result_int(),
      403);
  config.report_dir = (dir.path() / "reports").string();
  ComparisonAdmin admin(online, config);

  auto render = admin.Handle(Request(http::verb::get, "/admin/comparison"));
  EXPECT_EQ(render.result_int(), 200);
  EXPECT_EQ(render[http::field::content_type], "application/json");
  EXPECT_EQ(nlohmann::json::parse(render.body())["comparison"]["pairs"], 0);
  EXPECT_EQ(admin.Handle(Request(http::verb::put, "/admin/comparison")).result_int(), 405);

  auto created = admin.Handle(Request(http::verb::post, "/admin/comparison/report?name=r1"));
  EXPECT_EQ(created.result_int(), 201) << created.body();
  EXPECT_TRUE(fs::exists(dir.path() / "reports" / "r1" / "report.json"));
  EXPECT_EQ(
      admin.Handle(Request(http::verb::post, "/admin/comparison/report?name=r1")).result_int(),
      409);
  for (const char* query : {"name=../r2", "name=", "name=a&name=b", "other=1", "name=.x"}) {
    auto refused =
        admin.Handle(Request(http::verb::post, std::string("/admin/comparison/report?") + query));
    EXPECT_EQ(refused.result_int(), 400) << query;
  }
  EXPECT_FALSE(fs::exists(dir.path() / "r2"));
  EXPECT_EQ(admin.Handle(Request(http::verb::get, "/admin/comparison/report")).result_int(), 405);
}

}  // namespace
}  // namespace sg::gateway
