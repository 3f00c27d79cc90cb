#include "tools/load/load_stats.h"

#include <gtest/gtest.h>

#include "common/strings.h"

namespace sg::load {
namespace {

TEST(LoadStatsTest, NearestRankPercentiles) {
  std::vector<int64_t> sorted;
  for (int i = 1; i <= 100; ++i) sorted.push_back(i);
  EXPECT_EQ(NearestRankPercentile(sorted, 0.0), 1);
  EXPECT_EQ(NearestRankPercentile(sorted, 0.5), 50);
  EXPECT_EQ(NearestRankPercentile(sorted, 0.99), 99);
  EXPECT_EQ(NearestRankPercentile(sorted, 0.999), 100);
  EXPECT_EQ(NearestRankPercentile(sorted, 1.0), 100);
  EXPECT_EQ(NearestRankPercentile({42}, 0.5), 42);
}

TEST(LoadStatsTest, SummarizesPerEndpointAndAggregated) {
  LoadStats stats;
  // 1..10 ms on /a (two failures), 100 ms on /b.
  for (int i = 1; i <= 10; ++i)
    stats.Record("POST", "/a", i * 1000, i > 2, 10, i > 2 ? "" : "HTTP 503");
  stats.Record("GET", "/b", 100000, true, 30);
  EXPECT_EQ(stats.requests(), 11u);
  EXPECT_EQ(stats.failures(), 2u);
  auto rows = stats.Endpoints();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].name, "/a");
  EXPECT_EQ(rows[0].requests, 10u);
  EXPECT_EQ(rows[0].failures, 2u);
  EXPECT_DOUBLE_EQ(rows[0].avg_ms, 5.5);
  EXPECT_DOUBLE_EQ(rows[0].min_ms, 1.0);
  EXPECT_DOUBLE_EQ(rows[0].max_ms, 10.0);
  EXPECT_DOUBLE_EQ(rows[0].median_ms, 5.0);
  EXPECT_DOUBLE_EQ(rows[0].avg_content_bytes, 10.0);
  auto total = stats.Aggregated();
  EXPECT_EQ(total.name, "Aggregated");
  EXPECT_EQ(total.requests, 11u);
  EXPECT_DOUBLE_EQ(total.max_ms, 100.0);
  EXPECT_DOUBLE_EQ(total.median_ms, 6.0);
  EXPECT_EQ((stats.errors().at({"POST", "/a", "HTTP 503"})), 2u);
}

TEST(LoadStatsTest, CsvFollowsLocustsColumns) {
  LoadStats stats;
  stats.Record("POST", "/p", 2000, true, 100);
  stats.Record("POST", "/p", 4000, false, 0, "read: end of stream, \"eof\"");
  std::string csv = LocustStatsCsv(stats, 2.0);
  auto lines = Split(csv, '\n');
  ASSERT_EQ(lines.size(), 4u);  // header, /p, Aggregated, trailing empty
  EXPECT_EQ(lines[0],
            "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
            "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
            "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%");
  EXPECT_EQ(lines[1],
            "POST,/p,2,1,2.000,3.000,2.000,4.000,50.0,1.000,0.500,2.000,4.000,4.000,4.000,4.000,"
            "4.000,4.000,4.000,4.000,4.000,4.000");
  EXPECT_EQ(lines[2].substr(0, 16), ",Aggregated,2,1,");
  EXPECT_EQ(LocustFailuresCsv(stats),
            "Method,Name,Error,Occurrences\nPOST,/p,\"read: end of stream, \"\"eof\"\"\",1\n");
}

TEST(LoadStatsTest, TablesNameLocustsColumns) {
  LoadStats stats;
  stats.Record("POST", "/p", 1500, true, 1);
  std::string table = FormatRequestTable(stats, 1.0);
  for (const char* column : {"Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med",
                             "req/s", "failures/s", "Aggregated"}) {
    EXPECT_NE(table.find(column), std::string::npos) << column;
  }
  EXPECT_NE(table.find("0(0.00%)"), std::string::npos) << table;
  std::string percentiles = FormatPercentileTable(stats);
  EXPECT_NE(percentiles.find("99.99%"), std::string::npos);
  EXPECT_NE(percentiles.find("1.50"), std::string::npos);
}

TEST(LoadStatsTest, EmptyStatsStillFormat) {
  LoadStats stats;
  std::string csv = LocustStatsCsv(stats, 0);
  EXPECT_NE(csv.find(",Aggregated,0,0,"), std::string::npos);
  EXPECT_NE(csv.find("N/A"), std::string::npos);
  EXPECT_NE(FormatRequestTable(stats, 0).find("Aggregated"), std::string::npos);
}

}  // namespace
}  // namespace sg::load
