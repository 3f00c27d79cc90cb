#include "gateway/gateway_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "comparator/checkpoint.h"
#include "comparator/compare_config.h"
#include "comparator/gates.h"
#include "gateway/mirror.h"
#include "tests/support/test_support.h"

namespace sg::gateway {
namespace {

GatewayConfig Parse(const std::string& text) {
  return ParseConfig<GatewayConfig>(text, "gw.json", ParseGatewayConfig);
}

std::vector<std::string> Problems(const std::string& text) {
  try {
    Parse(text);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

const char* kMinimal = R"({"upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}},
                           "routes": [{"upstream": "a"}]})";

TEST(GatewayConfigTest, MinimalConfigGetsDocumentedDefaults) {
  auto config = Parse(kMinimal);
  EXPECT_EQ(config.listen_host, "0.0.0.0");
  EXPECT_EQ(config.listen_port, 8080);
  EXPECT_EQ(config.admin_host, "127.0.0.1");
  EXPECT_EQ(config.admin_port, 9901);
  ASSERT_EQ(config.routes.size(), 1u);
  EXPECT_EQ(config.routes[0].name, "route0");
  EXPECT_EQ(config.routes[0].path_prefix, "/");
  EXPECT_EQ(config.redact_headers,
            (std::vector<std::string>{"authorization", "cookie", "proxy-authorization"}));
  EXPECT_EQ(config.capture.response_headers, std::vector<std::string>{"content-type"});
  ASSERT_EQ(config.upstreams.size(), 1u);
  EXPECT_EQ(config.upstreams[0].endpoints[0].port, 81);
  EXPECT_EQ(config.upstreams[0].connect_timeout, std::chrono::seconds(1));
  EXPECT_EQ(config.upstreams[0].max_pending, 1024);
  EXPECT_EQ(config.upstreams[0].pending_timeout, std::chrono::seconds(1));
  EXPECT_EQ(config.max_request_body_bytes, 16 << 20);
  EXPECT_EQ(config.max_streamed_body_bytes, int64_t{1} << 30);
  EXPECT_EQ(config.shadow_threads, 0);
  EXPECT_EQ(config.shadow_nice, 0);
}

TEST(GatewayConfigTest, PairLogCompressionAndRetention) {
  auto config = Parse(R"({"capture": {"pair_log": {"path": "p.jsonl", "max_age": "30d",
    "max_total_bytes": 1000000}}, "upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}},
    "routes": [{"upstream": "a"}]})");
  const auto& log = config.capture.pair_log;
  EXPECT_EQ(log.compression, "zstd");  // rotated files are compressed unless asked otherwise
  EXPECT_EQ(log.compression_level, 3);
  EXPECT_EQ(log.max_age, std::chrono::hours(24 * 30));
  EXPECT_EQ(log.max_total_bytes, 1000000);
  auto problems = Problems(R"({"capture": {"pair_log": {"path": "p", "compression": "lz4",
    "compression_level": 30, "max_age": "30x"}}, "upstreams": {"a": {"endpoints":
    ["127.0.0.1:81"]}}, "routes": [{"upstream": "a"}]})");
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_NE(problems[0].find("$.capture.pair_log.compression: must be zstd or none, got \"lz4\""),
            std::string::npos)
      << problems[0];
  EXPECT_NE(problems[1].find("$.capture.pair_log.compression_level"), std::string::npos)
      << problems[1];
  EXPECT_NE(problems[2].find("$.capture.pair_log.max_age: invalid duration \"30x\""),
            std::string::npos)
      << problems[2];
}

TEST(GatewayConfigTest, BodySampleGlobalAndPerMirror) {
  auto config = Parse(kMinimal);
  EXPECT_EQ(config.capture.body_sample, 1.0);  // every body, as before the setting
  config = Parse(R"({"capture": {"body_sample": 0.01}, "upstreams": {"a": {"endpoints":
    ["127.0.0.1:81"]}}, "routes": [{"upstream": "a", "mirrors": [{"upstream": "a"},
    {"name": "x", "upstream": "a", "capture_body_sample": 0}]}]})");
  EXPECT_EQ(config.capture.body_sample, 0.01);
  EXPECT_FALSE(config.routes[0].mirrors[0].capture_body_sample);
  EXPECT_EQ(config.routes[0].mirrors[1].capture_body_sample, 0.0);
  auto problems = Problems(R"({"capture": {"body_sample": 2}, "upstreams": {"a": {"endpoints":
    ["127.0.0.1:81"]}}, "routes": [{"upstream": "a", "mirrors": [{"upstream": "a",
    "capture_body_sample": -0.5}]}]})");
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("$.routes[0].mirrors[0].capture_body_sample"), std::string::npos)
      << problems[0];
  EXPECT_NE(problems[1].find("$.capture.body_sample"), std::string::npos) << problems[1];
}

TEST(GatewayConfigTest, ShadowThreadsAndTheirNiceValue) {
  auto config = Parse(R"({"shadow_threads": 3, "shadow_nice": 19, "upstreams": {"a":
    {"endpoints": ["127.0.0.1:81"]}}, "routes": [{"upstream": "a"}]})");
  EXPECT_EQ(config.shadow_threads, 3);
  EXPECT_EQ(config.shadow_nice, 19);
  EXPECT_EQ(GatewayConfigToJson(config)["shadow_threads"], 3);
  EXPECT_EQ(GatewayConfigToJson(config)["shadow_nice"], 19);
  EXPECT_EQ(Problems(R"({"shadow_threads": -1, "shadow_nice": 20, "upstreams": {"a":
    {"endpoints": ["127.0.0.1:81"]}}, "routes": [{"upstream": "a"}]})"),
            (std::vector<std::string>{"gw.json: $.shadow_threads: must be in [0, 256], got -1",
                                      "gw.json: $.shadow_nice: must be in [0, 19], got 20"}));
}

TEST(GatewayConfigTest, ShadowHeaderMustBeAHeaderName) {
  auto with = [](const std::string& header) {
    return Problems(R"({"shadow_header": )" + nlohmann::json(header).dump() +
                    R"(, "upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}},
                      "routes": [{"upstream": "a"}]})");
  };
  EXPECT_EQ(with("X-Canary"), std::vector<std::string>{});
  EXPECT_EQ(with("x_shadow.v2~"), std::vector<std::string>{});
  EXPECT_EQ(with(""), std::vector<std::string>{});  // no marker
  // A CR/LF would inject a header into every mirror copy.
  EXPECT_EQ(with("X-Shadow\r\nX-Injected: 1"),
            std::vector<std::string>{
                "gw.json: $.shadow_header: must be a header name (letters, digits and "
                "!#$%&'*+-.^_`|~) or \"\", got \"X-Shadow\\r\\nX-Injected: 1\""});
  EXPECT_EQ(with("X Shadow").size(), 1u);
  EXPECT_EQ(with("X-Shadow:").size(), 1u);
  EXPECT_EQ(with("X-Schattén").size(), 1u);
}

TEST(GatewayConfigTest, StreamedBodyLimitZeroMeansUnlimited) {
  auto config = Parse(R"({"max_streamed_body_bytes": 0, "upstreams": {"a": {"endpoints":
    ["127.0.0.1:81"]}}, "routes": [{"upstream": "a"}]})");
  EXPECT_EQ(config.max_streamed_body_bytes, 0);
}

TEST(GatewayConfigTest, FullMirrorIsParsed) {
  auto config = Parse(R"({"upstreams": {"a": {"endpoints": ["127.0.0.1:81", "[::1]:82"]},
                                        "b": {"endpoints": ["localhost:83"]}},
    "routes": [{"name": "r", "hosts": ["API.example.com"], "path_prefix": "/p/",
                "methods": ["post"], "upstream": "a",
                "mirrors": [{"name": "m", "upstream": "b", "percent": 12.5, "sampling": "hash",
                             "hash_header": "X-User", "mirror_body": false,
                             "max_body_bytes": 10, "timeout": "250ms", "max_in_flight": 3}]}]})");
  const auto& route = config.routes[0];
  EXPECT_EQ(route.hosts, std::vector<std::string>{"api.example.com"});
  EXPECT_EQ(route.methods, std::vector<std::string>{"POST"});
  const auto& m = route.mirrors[0];
  EXPECT_EQ(m.name, "m");
  EXPECT_DOUBLE_EQ(m.percent, 12.5);
  EXPECT_EQ(m.sampling, Sampling::kHash);
  EXPECT_EQ(m.hash_header, "x-user");
  EXPECT_FALSE(m.mirror_body);
  EXPECT_EQ(m.max_body_bytes, 10);
  EXPECT_EQ(m.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(m.max_in_flight, 3);
  EXPECT_EQ(config.upstreams[0].endpoints[1].host, "::1");
}

TEST(GatewayConfigTest, EveryProblemIsReportedWithFileAndPath) {
  auto problems = Problems(R"({"listen": "nope", "typo": 1,
    "upstreams": {"a": {"endpoints": [], "idle": "1s", "max_pending": -1,
                        "pending_timeout": "0s"}},
    "routes": [{"upstream": "b",
                "mirrors": [{"upstream": "a", "percent": 120, "sampling": "hash"},
                            {"upstream": "a", "sampling": "random", "timeout": "soon"}]}]})");
  auto has = [&](const std::string& text) {
    for (const auto& p : problems) {
      if (p == text) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("gw.json: $.listen: must be \"host:port\", got \"nope\"")) << problems.size();
  EXPECT_TRUE(has("gw.json: $.typo: unknown key"));
  EXPECT_TRUE(has("gw.json: $.upstreams.a.endpoints: must list at least one endpoint"));
  EXPECT_TRUE(has("gw.json: $.upstreams.a.idle: unknown key"));
  EXPECT_TRUE(has("gw.json: $.upstreams.a.max_pending: must be in [0, 1e+06], got -1"));
  EXPECT_TRUE(has("gw.json: $.upstreams.a.pending_timeout: must be a positive duration"));
  EXPECT_TRUE(has("gw.json: $.routes[0].upstream: unknown upstream \"b\""));
  EXPECT_TRUE(has("gw.json: $.routes[0].mirrors[0].percent: must be in [0, 100], got 120"));
  EXPECT_TRUE(has("gw.json: $.routes[0].mirrors[0]: hash sampling needs \"hash_header\""));
  EXPECT_TRUE(
      has("gw.json: $.routes[0].mirrors[1].sampling: must be \"counter\" or \"hash\", got "
          "\"random\""));
  bool timeout_reported = false;
  for (const auto& p : problems) {
    if (p.starts_with("gw.json: $.routes[0].mirrors[1].timeout: ")) timeout_reported = true;
  }
  EXPECT_TRUE(timeout_reported);
}

TEST(GatewayConfigTest, DuplicateNamesAreErrors) {
  auto problems = Problems(R"({"upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}},
    "routes": [{"name": "r", "upstream": "a", "mirrors": [{"name": "m", "upstream": "a"},
                                                          {"name": "m", "upstream": "a"}]},
               {"name": "r", "upstream": "a"}]})");
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0], "gw.json: $.routes[0].mirrors[1].name: duplicate mirror name \"m\"");
  EXPECT_EQ(problems[1], "gw.json: $.routes[1].name: duplicate route name \"r\"");
}

TEST(GatewayConfigTest, ExampleConfigIsValid) {
  auto path = (testing::SourceDir() / "configs" / "gateway.example.json").string();
  auto config = LoadGatewayConfig(path);
  EXPECT_EQ(config.routes.size(), 2u);
  EXPECT_EQ(config.routes[0].mirrors.size(), 1u);
}

TEST(GatewayConfigTest, EffectiveConfigShowsEveryFieldAndRoundTripsThroughTheParser) {
  // Every key the parser reads, each with a value other than its default, written as
  // GatewayConfigToJson writes it (durations in their largest exact unit, names lower-case).
  // /admin/config must show exactly this: a field it leaves out, or prints from its default
  // instead of the configured value, makes the two differ. A new config field fails here until
  // it is added both to the effective config and to this list.
  testing::TempDir dir;
  const auto rules = dir.Write("rules.json", R"({"rules": [{"name": "api", "kind": "json"}]})");
  const auto gates = dir.Write("gates.json", R"({"gates": [{"metric": "pairs", "min": 10}]})");
  const auto token = dir.Write("admin.token", "0123456789abcdef0123\n");
  const nlohmann::json full = {
      {"listen", "127.0.0.2:8081"},
      {"admin_listen", "127.0.0.3:9902"},
      {"admin", {{"allowed_hosts", {"gw.internal", "[::1]"}}, {"token_file", token.string()}}},
      {"io_threads", 3},
      {"shadow_threads", 2},
      {"shadow_nice", 7},
      {"max_connections", 123},
      {"max_header_bytes", 4096},
      {"max_request_body_bytes", 1000},
      {"max_streamed_body_bytes", 2000},
      {"max_buffered_body_bytes", 3000},
      {"client_header_timeout", "11s"},
      {"client_body_timeout", "12ms"},
      {"keep_alive_timeout", "13s"},
      {"write_timeout", "14s"},
      {"shutdown_grace", "1500ms"},
      {"shadow_header", "X-Mirror"},
      {"redact_headers", {"x-secret"}},
      {"access_log", "json"},
      {"access_log_path", (dir.path() / "access.log").string()},
      {"upstreams",
       {{"a",
         {{"endpoints", {"127.0.0.1:81", "[::1]:82"}},
          {"max_connections", 9},
          {"max_pending", 8},
          {"pending_timeout", "250ms"},
          {"idle_timeout", "31s"},
          {"connect_timeout", "750us"},
          {"header_timeout", "32s"},
          {"total_timeout", "61s"},
          {"max_response_bytes", 777},
          {"eject_after_failures", 3},
          {"eject_duration", "4s"}}},
        {"b",
         {{"endpoints", {"127.0.0.1:83"}},
          {"max_connections", 512},
          {"max_pending", 1024},
          {"pending_timeout", "1s"},
          {"idle_timeout", "30s"},
          {"connect_timeout", "1s"},
          {"header_timeout", "30s"},
          {"total_timeout", "60s"},
          {"max_response_bytes", 64 << 20},
          {"eject_after_failures", 5},
          {"eject_duration", "10s"}}}}},
      {"routes",
       {{{"name", "api"},
         {"hosts", {"api.example"}},
         {"path_prefix", "/v1/"},
         {"methods", {"POST"}},
         {"upstream", "a"},
         {"mirrors",
          {{{"name", "cpu"},
            {"upstream", "b"},
            {"percent", 12.5},
            {"sampling", "hash"},
            {"hash_header", "x-user"},
            {"mirror_body", false},
            {"max_body_bytes", 4321},
            {"timeout", "2s"},
            {"max_in_flight", 17},
            {"capture_body_sample", 0.5}}}}}}},
      {"capture",
       {{"request_headers", {"x-user"}},
        {"response_headers", {"x-model"}},
        {"max_body_bytes", 555},
        {"body_sample", 0.25},
        {"pair_log",
         {{"path", (dir.path() / "pairs.jsonl").string()},
          {"max_file_bytes", 8192},
          {"max_files", 2},
          {"compression", "none"},
          {"compression_level", 7},
          {"max_total_bytes", 1 << 30},
          {"max_age", "2592000s"},
          {"queue_capacity", 99},
          {"counters_interval", "3s"}}}}},
      {"comparison",
       {{"rules", rules.string()},
        {"gates", gates.string()},
        {"queue_capacity", 98},
        {"run", "canary"},
        {"report_dir", (dir.path() / "reports").string()},
        {"final_report", false},
        {"checkpoint_file", (dir.path() / "online.ckpt").string()},
        {"checkpoint_interval", "90s"}}}};
  const auto file = (dir.path() / "gw.json").string();
  auto config = ParseConfig<GatewayConfig>(full.dump(), file, ParseGatewayConfig);
  EXPECT_EQ(GatewayConfigToJson(config), full);
  // What /admin/config shows is itself a config that parses to the same effective config.
  auto again =
      ParseConfig<GatewayConfig>(GatewayConfigToJson(config).dump(), file, ParseGatewayConfig);
  EXPECT_EQ(GatewayConfigToJson(again), full);
  EXPECT_EQ(again.upstreams.at(0).eject_duration, std::chrono::seconds(4));
  EXPECT_EQ(again.routes.at(0).mirrors.at(0).max_in_flight, 17);
  // The token itself is never shown, only its file.
  EXPECT_EQ(config.admin.token, "0123456789abcdef0123");
  EXPECT_EQ(GatewayConfigToJson(config).dump().find("0123456789abcdef0123"), std::string::npos);
}

TEST(GatewayConfigTest, ComparisonSectionLoadsRulesAndGatesBesideTheConfig) {
  testing::TempDir dir;
  dir.Write("rules.json", R"({"rules": [{"name": "api", "kind": "json"}], "seed": 7})");
  dir.Write("gates.json", R"({"gates": [{"metric": "pairs", "min": 10}]})");
  std::string text = R"({"upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}},
                         "routes": [{"upstream": "a"}],
                         "comparison": {"rules": "rules.json", "gates": "gates.json"}})";
  // Relative inputs are resolved against the config file's directory, not the CWD.
  auto file = (dir.path() / "gw.json").string();
  auto config = ParseConfig<GatewayConfig>(text, file, ParseGatewayConfig);
  const auto& c = config.comparison;
  ASSERT_TRUE(c.enabled());
  EXPECT_EQ(c.rules_path, (dir.path() / "rules.json").string());
  EXPECT_EQ(c.rules->rules.at(0).name, "api");
  EXPECT_EQ(c.rules->seed, 7u);
  ASSERT_TRUE(c.gates);
  EXPECT_EQ(c.gates->gates.at(0).metric, "pairs");
  EXPECT_EQ(c.queue_capacity, 4096);
  EXPECT_EQ(c.run, "online");
  EXPECT_TRUE(c.report_dir.empty());
  EXPECT_TRUE(c.final_report);
  // /admin/config shows it, and it parses back to the same.
  auto json = GatewayConfigToJson(config);
  EXPECT_EQ(json["comparison"]["gates"], (dir.path() / "gates.json").string());
  EXPECT_FALSE(json["comparison"].contains("report_dir"));
  EXPECT_EQ(GatewayConfigToJson(Parse(json.dump())), json);
}

TEST(GatewayConfigTest, ComparisonCheckpointFileIntervalAndRulesHash) {
  testing::TempDir dir;
  dir.Write("rules.json", R"({"rules": [{"name": "api", "kind": "json"}]})");
  const std::string head = R"({"upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}},
                               "routes": [{"upstream": "a"}], "comparison": {"rules": "rules.json")";
  const auto file = (dir.path() / "gw.json").string();
  auto parse = [&](const std::string& more) {
    return ParseConfig<GatewayConfig>(head + more + "}}", file, ParseGatewayConfig);
  };
  // Without checkpoint_file: none, and /admin/config shows no checkpoint keys.
  auto plain = parse("");
  EXPECT_TRUE(plain.comparison.checkpoint_file.empty());
  EXPECT_EQ(plain.comparison.checkpoint_interval, std::chrono::seconds(60));
  EXPECT_FALSE(GatewayConfigToJson(plain)["comparison"].contains("checkpoint_file"));
  EXPECT_FALSE(GatewayConfigToJson(plain)["comparison"].contains("checkpoint_interval"));
  // The file is an output: relative to the working directory, as report_dir, not to the config.
  auto config = parse(R"(, "checkpoint_file": "state/online.ckpt", "checkpoint_interval": "2s")");
  EXPECT_EQ(config.comparison.checkpoint_file, "state/online.ckpt");
  EXPECT_EQ(config.comparison.checkpoint_interval, std::chrono::seconds(2));
  EXPECT_EQ(GatewayConfigToJson(config)["comparison"]["checkpoint_interval"], "2s");
  // The rules' hash names the rules' content as JSON: spacing and key order do not change it, a
  // rule does.
  EXPECT_EQ(config.comparison.rules_sha256,
            comparator::CompareConfigHash(R"({"rules": [{"name": "api", "kind": "json"}]})"));
  dir.Write("rules.json", "{\"rules\":[{\"kind\":\"json\",  \"name\":\"api\"}]}\n");
  EXPECT_EQ(parse("").comparison.rules_sha256, config.comparison.rules_sha256);
  dir.Write("rules.json", R"({"rules": [{"name": "api", "kind": "exact"}]})");
  EXPECT_NE(parse("").comparison.rules_sha256, config.comparison.rules_sha256);

  auto problems = [&](const std::string& more) {
    try {
      parse(more);
    } catch (const ConfigError& e) {
      return e.problems();
    }
    return std::vector<std::string>{};
  };
  EXPECT_EQ(problems(R"(, "checkpoint_file": "")"),
            std::vector<std::string>{file + ": $.comparison.checkpoint_file: must not be empty"});
  EXPECT_EQ(problems(R"(, "checkpoint_interval": "5s")"),
            std::vector<std::string>{
                file + ": $.comparison.checkpoint_interval: needs \"checkpoint_file\""});
  EXPECT_EQ(problems(R"(, "checkpoint_file": "c", "checkpoint_interval": "999ms")"),
            std::vector<std::string>{file +
                                     ": $.comparison.checkpoint_interval: must be at least 1s"});
  EXPECT_EQ(problems(R"(, "checkpoint_file": "c", "checkpoint_interval": "0s")"),
            std::vector<std::string>{
                file + ": $.comparison.checkpoint_interval: must be a positive duration"});
  auto wrong_type = problems(R"(, "checkpoint_file": 3, "checkpoint_interval": "soon")");
  ASSERT_EQ(wrong_type.size(), 2u);
  EXPECT_TRUE(wrong_type[0].starts_with(file + ": $.comparison.checkpoint_file: "))
      << wrong_type[0];
  EXPECT_TRUE(wrong_type[1].starts_with(file + ": $.comparison.checkpoint_interval: "))
      << wrong_type[1];
}

TEST(GatewayConfigTest, NoComparisonSectionMeansNoComparison) {
  auto config = Parse(kMinimal);
  EXPECT_FALSE(config.comparison.enabled());
  EXPECT_FALSE(GatewayConfigToJson(config).contains("comparison"));
}

TEST(GatewayConfigTest, ComparisonProblemsNameTheirFileAndPath) {
  testing::TempDir dir;
  auto rules = dir.Write("rules.json", R"({"rules": [{"name": "x", "kind": "fuzzy"}]})").string();
  auto problems = Problems(R"({"upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}},
                               "routes": [{"upstream": "a"}],
                               "comparison": {"rules": ")" +
                           rules + R"(", "gates": "/nonexistent/g.json",
                                              "queue_capacity": 0, "run": "", "final_report": 1,
                                              "typo": 1}})");
  auto has = [&](const std::string& text) {
    for (const auto& p : problems) {
      if (p.find(text) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("gw.json: $.comparison.queue_capacity: must be in [1, 1e+07], got 0"));
  EXPECT_TRUE(has("gw.json: $.comparison.run: must not be empty"));
  EXPECT_TRUE(has("gw.json: $.comparison.final_report: "));
  EXPECT_TRUE(has("gw.json: $.comparison.typo: unknown key"));
  EXPECT_TRUE(has(rules + ": $.rules[0].kind: "));
  EXPECT_TRUE(has("gw.json: $.comparison.rules: \"" + rules + "\" is not a valid compare config"));
  EXPECT_TRUE(has("gw.json: $.comparison.gates: cannot open gates config \"/nonexistent/g.json\""));
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  EXPECT_EQ(problems.size(), 7u) << all;
}

}  // namespace
}  // namespace sg::gateway

namespace sg::gateway {
namespace {

TEST(GatewayConfigTest, CapturedCredentialsAreRedacted) {
  // capture.request_headers may name a credential; redact_headers still keeps it out of the log.
  auto config = ParseConfig<GatewayConfig>(
      R"({"upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}}, "routes": [{"upstream": "a"}],
          "capture": {"request_headers": ["Authorization", "x-true-label", "cookie"]}})",
      "gw.json", ParseGatewayConfig);
  EXPECT_EQ(config.capture.redacted, (std::vector<std::string>{"authorization", "cookie"}));
  namespace http = boost::beast::http;
  http::request<http::string_body> request{http::verb::post, "/p", 11};
  request.set(http::field::authorization, "Bearer s3cret");
  request.set(http::field::cookie, "session=abc");
  request.set("X-True-Label", "Bag");
  const CapturedRequest captured = CaptureRequest(request, config.capture);
  EXPECT_EQ(captured.headers.at("authorization"), "[redacted]");
  EXPECT_EQ(captured.headers.at("cookie"), "[redacted]");
  EXPECT_EQ(captured.headers.at("x-true-label"), "Bag");
}

}  // namespace
}  // namespace sg::gateway

namespace sg::gateway {
namespace {

constexpr const char* kUpstreamAndRoute =
    R"("upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}}, "routes": [{"upstream": "a"}])";

std::vector<std::string> ProblemsIn(const std::string& file, const std::string& text) {
  try {
    ParseConfig<GatewayConfig>(text, file, ParseGatewayConfig);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

TEST(GatewayConfigTest, AdminDefaultsToLoopbackNamesAndNoToken) {
  auto config = ParseConfig<GatewayConfig>(std::string("{") + kUpstreamAndRoute + "}", "gw.json",
                                           ParseGatewayConfig);
  EXPECT_EQ(config.admin_host, "127.0.0.1");
  EXPECT_EQ(config.admin.allowed_hosts,
            (std::vector<std::string>{"localhost", "127.0.0.1", "[::1]"}));
  EXPECT_TRUE(config.admin.token.empty());
  EXPECT_EQ(config.max_buffered_body_bytes, int64_t{256} << 20);
}

TEST(GatewayConfigTest, AdminBeyondLoopbackNeedsATokenFile) {
  // Refused at config time (so `check` and the start both exit 2), naming the JSON path.
  for (const char* listen : {"0.0.0.0:9901", "[::]:9901", "192.0.2.7:9901"}) {
    auto problems = ProblemsIn("gw.json", std::string(R"({"admin_listen": ")") + listen + "\", " +
                                              kUpstreamAndRoute + "}");
    ASSERT_EQ(problems.size(), 1u) << listen;
    EXPECT_EQ(problems[0].rfind("gw.json: $.admin_listen: \"", 0), 0u) << problems[0];
    EXPECT_NE(problems[0].find("is beyond loopback: set admin.token_file"), std::string::npos)
        << problems[0];
  }
  // Loopback needs none; beyond it, a token file is enough.
  for (const char* listen : {"127.0.0.1:9901", "127.1.2.3:1", "[::1]:9901"}) {
    EXPECT_TRUE(ProblemsIn("gw.json", std::string(R"({"admin_listen": ")") + listen + "\", " +
                                          kUpstreamAndRoute + "}")
                    .empty())
        << listen;
  }
  testing::TempDir dir;
  dir.Write("admin.token", "  a-long-enough-secret-token \nsecond line ignored\n");
  auto file = (dir.path() / "gw.json").string();
  auto config = ParseConfig<GatewayConfig>(
      std::string(R"({"admin_listen": "0.0.0.0:9901", "admin": {"token_file": "admin.token"}, )") +
          kUpstreamAndRoute + "}",
      file, ParseGatewayConfig);
  EXPECT_EQ(config.admin.token_file, (dir.path() / "admin.token").string());  // beside the config
  EXPECT_EQ(config.admin.token, "a-long-enough-secret-token");
  // A name is not bound as it is: an address is needed.
  auto named = ProblemsIn(
      "gw.json", std::string(R"({"admin_listen": "localhost:9901", )") + kUpstreamAndRoute + "}");
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].rfind("gw.json: $.admin_listen: must be an IP address", 0), 0u) << named[0];
}

TEST(GatewayConfigTest, AdminSectionProblemsNameTheirPath) {
  testing::TempDir dir;
  dir.Write("short.token", "abc\n");
  auto file = (dir.path() / "gw.json").string();
  auto has = [](const std::vector<std::string>& problems, const std::string& text) {
    for (const auto& p : problems) {
      if (p.find(text) != std::string::npos) return true;
    }
    return false;
  };
  auto problems = ProblemsIn(file, std::string(R"({"admin": {"token_file": "short.token",
                                      "allowed_hosts": ["ok.example", "localhost:9901", ""],
                                      "typo": 1}, )") +
                                       kUpstreamAndRoute + "}");
  EXPECT_TRUE(has(problems, "$.admin.token_file: \"" + (dir.path() / "short.token").string() +
                                "\" must hold a token of at least 16 characters"));
  EXPECT_TRUE(has(problems, "$.admin.allowed_hosts[1]: must be a host name"));
  EXPECT_TRUE(has(problems, "$.admin.allowed_hosts[2]: must be a host name"));
  EXPECT_TRUE(has(problems, "$.admin.typo: unknown key"));
  EXPECT_EQ(problems.size(), 4u);
  auto missing = ProblemsIn(file, std::string(R"({"admin": {"token_file": "/nonexistent/t"}, )") +
                                      kUpstreamAndRoute + "}");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_NE(missing[0].find("$.admin.token_file: \"/nonexistent/t\": cannot open"),
            std::string::npos)
      << missing[0];
  // A FIFO, a device and a directory are refused at once: opening the FIFO, or reading
  // /dev/zero to its first newline, hung the check.
  ASSERT_EQ(mkfifo((dir.path() / "fifo").c_str(), 0600), 0);
  for (std::string odd :
       {(dir.path() / "fifo").string(), std::string("/dev/zero"), dir.path().string()}) {
    auto refused = ProblemsIn(
        file, R"({"admin": {"token_file": ")" + odd + R"("}, )" + kUpstreamAndRoute + "}");
    ASSERT_EQ(refused.size(), 1u) << odd;
    EXPECT_NE(refused[0].find("$.admin.token_file: \"" + odd + "\": is not a regular file"),
              std::string::npos)
        << refused[0];
  }
  dir.Write("huge.token", std::string(5000, 'x'));
  auto huge = ProblemsIn(
      file, std::string(R"({"admin": {"token_file": "huge.token"}, )") + kUpstreamAndRoute + "}");
  ASSERT_EQ(huge.size(), 1u);
  EXPECT_NE(huge[0].find("larger than 4096 bytes"), std::string::npos) << huge[0];
}

}  // namespace
}  // namespace sg::gateway

namespace sg::gateway {
namespace {

TEST(GatewayConfigTest, AdminMustNotShareTheProxysAddress) {
  auto problems = [](const std::string& listen, const std::string& admin) {
    try {
      ParseConfig<GatewayConfig>(R"({"listen": ")" + listen + R"(", "admin_listen": ")" + admin +
                                     R"(", "upstreams": {"a": {"endpoints": ["127.0.0.1:81"]}},
                                     "routes": [{"upstream": "a"}]})",
                                 "gw.json", ParseGatewayConfig);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(problems("127.0.0.1:8080", "127.0.0.1:8080")
                .find("gw.json: $.admin_listen: must not be the address of listen"),
            std::string::npos);
  EXPECT_NE(problems("0.0.0.0:8080", "127.0.0.1:8080").find("$.admin_listen"), std::string::npos);
  EXPECT_EQ(problems("127.0.0.1:8080", "127.0.0.1:9901"), "");
}

}  // namespace
}  // namespace sg::gateway
