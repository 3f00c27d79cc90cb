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
    stats.Record("POST", "/a", i * 1000, i > 2, 10, i > 2 ? "" : "E503");
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
  EXPECT_EQ((stats.errors().at({"POST", "/a", "E503"})), 2u);
}

// The history summarises the run every second; requests recorded after one summary are merged
// into the order it left, not appended.
TEST(LoadStatsTest, SummariesStayExactAcrossRepeatedCalls) {
  LoadStats stats;
  for (int ms : {5, 1, 3}) stats.Record("GET", "/x", ms * 1000, true, 0);
  EXPECT_DOUBLE_EQ(stats.Aggregated().median_ms, 3.0);
  for (int ms : {0, 4, 2, 6}) stats.Record("GET", "/x", ms * 1000, true, 0);
  for (const auto& row : {stats.Aggregated(), stats.Endpoints().at(0)}) {
    EXPECT_DOUBLE_EQ(row.min_ms, 0.0);
    EXPECT_DOUBLE_EQ(row.max_ms, 6.0);
    EXPECT_DOUBLE_EQ(row.median_ms, 3.0);
    EXPECT_DOUBLE_EQ(row.avg_ms, 3.0);
    EXPECT_EQ(row.percentiles_ms,
              (std::vector<double>{3.0, 4.0, 5.0, 5.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0}));
  }
}

TEST(LoadStatsTest, CsvFollowsLocustsColumns) {
  LoadStats stats;
  stats.Record("POST", "/p", 2000, true, 100);
  stats.Record("POST", "/p", 4000, false, 0, "HTTPError('500 Server Error: x, \"y\"')");
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
  EXPECT_EQ(
      LocustFailuresCsv(stats),
      "Method,Name,Error,Occurrences\nPOST,/p,\"HTTPError('500 Server Error: x, \"\"y\"\"')\",1\n");
}

// Locust's StatsCSVFileWriter.stats_history_csv_columns and StatsCSV.exceptions_columns
// (locust/stats.py, 2.12.1); tests/integration/tools/locust_csv_test.py checks them against
// Locust's module itself.
TEST(LoadStatsTest, HistoryAndExceptionsHeadersAreLocusts) {
  EXPECT_EQ(LocustStatsHistoryHeader(),
            "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,"
            "99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,"
            "Total Median Response Time,Total Average Response Time,Total Min Response Time,"
            "Total Max Response Time,Total Average Content Size\n");
  EXPECT_EQ(LocustExceptionsCsv(), "Count,Message,Traceback,Nodes\n");
}

TEST(LoadStatsTest, HistoryRowsBeforeAnyRequestAreLocusts) {
  LoadStats stats;
  stats.set_start_unix_s(1000);
  // As Locust's first row: no rate, N/A percentiles, zero totals.
  EXPECT_EQ(LocustStatsHistoryRows(stats, 1000, 4, false),
            "1000,4,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,"
            "0,0,0,0.0,0,0,0\n");
  EXPECT_EQ(LocustStatsHistoryRows(stats, 1000, 4, true),
            LocustStatsHistoryRows(stats, 1000, 4, false));
}

// Current rates: completions per whole second over the last 10 s before the row's second (from
// the start at the earliest); percentiles: the run's (Aggregated only), or the last 10 s and the
// current second's (full history, every row).
TEST(LoadStatsTest, HistoryRowsCarryCurrentRatesAndWindowPercentiles) {
  LoadStats stats;
  stats.set_start_unix_s(1000);
  // Second 1000: 4 requests of 1 ms on /a (one failed). Second 1001: 2 of 50 ms on /b.
  for (int i = 0; i < 4; ++i) stats.Record("POST", "/a", 1000, i > 0, 10, i > 0 ? "" : "E", 1000);
  stats.Record("GET", "/b", 50000, true, 0, "", 1001);
  stats.Record("GET", "/b", 50000, true, 0, "", 1001);
  // At 1002: two whole seconds (1000, 1001) since the start: 6 / 2 = 3 req/s, 1 / 2 failures/s.
  auto lines = Split(LocustStatsHistoryRows(stats, 1002, 2, false), '\n');
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "1002,2,,Aggregated,3.000000,0.500000,1.000,1.000,50.000,50.000,50.000,50.000,50.000,"
            "50.000,50.000,50.000,50.000,6,1,1.000,17.333,1.000,50.000,6.7");
  lines = Split(LocustStatsHistoryRows(stats, 1002, 2, true), '\n');
  ASSERT_EQ(lines.size(), 4u);  // /a, /b (sorted by name), Aggregated, trailing empty
  EXPECT_EQ(lines[0].substr(0, 42), "1002,2,POST,/a,2.000000,0.500000,1.000,1.0");
  EXPECT_EQ(lines[1].substr(0, 43), "1002,2,GET,/b,1.000000,0.000000,50.000,50.0");
  EXPECT_EQ(lines[2].substr(0, 37), "1002,2,,Aggregated,3.000000,0.500000,");
  // 11 s later the window has moved past both seconds: no rate, and (full history) no
  // percentiles; the run's totals stay.
  lines = Split(LocustStatsHistoryRows(stats, 1012, 0, true), '\n');
  EXPECT_EQ(lines[2],
            "1012,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,"
            "6,1,1.000,17.333,1.000,50.000,6.7");
  lines = Split(LocustStatsHistoryRows(stats, 1012, 0, false), '\n');
  EXPECT_EQ(lines[0].substr(0, 44), "1012,0,,Aggregated,0.000000,0.000000,1.000,1");
  // At 1011 only second 1001 is in the window: 2 requests over 10 seconds, its 50 ms.
  lines = Split(LocustStatsHistoryRows(stats, 1011, 0, true), '\n');
  EXPECT_EQ(lines[2].substr(0, 44), "1011,0,,Aggregated,0.200000,0.000000,50.000,");
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
