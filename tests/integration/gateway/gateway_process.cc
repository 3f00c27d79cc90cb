#include "tests/integration/gateway/gateway_process.h"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace sg::testing {

using nlohmann::json;
using namespace std::chrono_literals;

std::string Addr(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

json MakeConfig(int primary_port, int shadow_port, json mirror) {
  json config = {{"io_threads", 2},
                 {"shutdown_grace", "1s"},
                 {"client_header_timeout", "400ms"},
                 {"client_body_timeout", "400ms"},
                 {"max_header_bytes", 4096},
                 {"max_request_body_bytes", 100000},
                 {"upstreams",
                  {{"primary",
                    {{"endpoints", {Addr(primary_port)}},
                     {"header_timeout", "500ms"},
                     {"total_timeout", "2s"}}}}},
                 {"routes", {{{"name", "r"}, {"upstream", "primary"}}}},
                 {"capture", {{"request_headers", {"content-type"}}, {"max_body_bytes", 1024}}}};
  if (shadow_port) {
    config["upstreams"]["shadow"] = {{"endpoints", {Addr(shadow_port)}},
                                     {"connect_timeout", "200ms"}};
    json m = {{"name", "cpu"}, {"upstream", "shadow"}, {"timeout", "300ms"}};
    m.update(mirror);
    config["routes"][0]["mirrors"] = {m};
  }
  return config;
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

json ReadJsonFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  return json::parse(in, nullptr, false);
}

json AdminComparison(const GatewayProcess& gateway) {
  auto response = HttpGet(gateway.admin_port(), "/admin/comparison");
  if (!response || response->status != 200) return json();
  return json::parse(response->body, nullptr, false);
}

GatewayProcess::GatewayProcess(json config, const TempDir& dir) {
  port_ = FreePort();
  admin_port_ = FreePort();
  config["listen"] = Addr(port_);
  config["admin_listen"] = Addr(admin_port_);
  pairs_ = (dir.path() / ("pairs-" + std::to_string(port_) + ".jsonl")).string();
  std::string interval = "60s";  // unless the test sets its own
  if (config.contains("capture") && config["capture"].contains("pair_log")) {
    interval = config["capture"]["pair_log"].value("counters_interval", interval);
  }
  config["capture"]["pair_log"] = {{"path", pairs_}, {"counters_interval", interval}};
  auto path = dir.Write("gateway-" + std::to_string(port_) + ".json", config.dump(2));
  process_.emplace("shadowgate", std::vector<std::string>{"--config", path.string()});
  std::string why;
  ready_ = process_->WaitReady(admin_port_, "/healthz", 10s, &why);
  EXPECT_TRUE(ready_) << why;
}

double GatewayProcess::Metric(const std::string& sample) const {
  auto response = HttpGet(admin_port_, "/metrics");
  if (!response) return -1;
  std::istringstream in(response->body);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(sample + " ")) return std::stod(line.substr(sample.size() + 1));
  }
  return 0;
}

double GatewayProcess::Outcome(const std::string& outcome) const {
  return Metric("sg_gateway_mirror_outcomes_total{route=\"r\",mirror=\"cpu\",outcome=\"" + outcome +
                "\"}");
}

double GatewayProcess::NotMirrored(const std::string& reason) const {
  return Metric("sg_gateway_not_mirrored_total{route=\"r\",mirror=\"cpu\",reason=\"" + reason +
                "\"}");
}

std::vector<PairLogEntry> GatewayProcess::StopAndReadPairs() {
  int status = process_->Stop(10s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
  std::vector<PairLogEntry> entries;
  std::ifstream in(pairs_);
  for (std::string line; std::getline(in, line);) {
    std::string why;
    auto entry = DecodePairLogLine(line, &why);
    EXPECT_TRUE(entry) << why << ": " << line;
    if (entry) entries.push_back(*entry);
  }
  return entries;
}

std::filesystem::path WriteNginxConfig(const TempDir& dir,
                                       const std::vector<std::pair<int, std::string>>& servers) {
  const std::string tmp = dir.path().string();
  std::string conf = "daemon off; master_process off; pid " + tmp + "/nginx.pid;\n" +
                     "error_log stderr warn; events {}\n" +
                     "http { access_log off; client_body_temp_path " + tmp + ";\n" +
                     "  proxy_temp_path " + tmp + "; fastcgi_temp_path " + tmp + ";\n" +
                     "  uwsgi_temp_path " + tmp + "; scgi_temp_path " + tmp + ";\n";
  for (const auto& [port, body] : servers) {
    conf += "  server { listen 127.0.0.1:" + std::to_string(port) + ";\n    " + body + "\n  }\n";
  }
  conf += "}\n";
  return dir.Write("nginx.conf", conf);
}

JudgedUpstreams StartJudgedUpstreams(const TempDir& dir) {
  JudgedUpstreams upstreams;
  upstreams.primary_port = FreePort();
  upstreams.shadow_port = FreePort();
  auto conf = WriteNginxConfig(
      dir, {{upstreams.primary_port,
             R"(default_type application/json; location / { return 200 '{"v": 1}'; })"},
            {upstreams.shadow_port, R"(default_type application/json;
                                      location /same { return 200 '{"v": 1}'; }
                                      location /close { return 200 '{"v": 1.0005}'; }
                                      location /diff { return 200 '{"v": 2}'; })"}});
  upstreams.nginx.emplace(
      "/usr/sbin/nginx",
      std::vector<std::string>{"-p", dir.path().string(), "-c", conf.string(), "-e", "stderr"});
  std::string why;
  upstreams.ready = upstreams.nginx->WaitReady(upstreams.primary_port, "", 10s, &why) &&
                    WaitForPort(upstreams.shadow_port, 5s);
  EXPECT_TRUE(upstreams.ready) << why;
  return upstreams;
}

CheckResult RunCheck(const std::filesystem::path& config,
                     const std::filesystem::path& working_dir) {
  return RunShadowgate({"check", "--config", config.string()}, working_dir);
}

CheckResult RunShadowgate(const std::vector<std::string>& args,
                          const std::filesystem::path& working_dir) {
  CheckResult result;
  TempDir out_dir;
  auto out = out_dir.path() / "out.txt";
  SpawnOptions options;
  options.stdout_path = out.string();
  options.stderr_path = out.string();
  options.working_dir = working_dir.string();
  std::string error;
  std::vector<std::string> argv = {(BinDir() / "shadowgate").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = Subprocess::Spawn(argv, options, &error);
  EXPECT_TRUE(child) << error;
  if (!child) return result;
  auto status = child->WaitFor(10s);
  EXPECT_TRUE(status) << "shadowgate did not exit";
  if (status && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  std::ifstream in(out);
  result.output.assign(std::istreambuf_iterator<char>(in), {});
  return result;
}

}  // namespace sg::testing
