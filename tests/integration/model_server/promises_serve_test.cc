// sg-serve behaviour docs/model-server.md promises that no other test exercised (issue 23's
// list): the quick --model form serving, warmup_iterations, max_pixels, an idle worker's death,
// OMP_PLACES/KMP_AFFINITY kept out of the workers, and what a model whose worker cannot come back
// does: the running batch's 504, the batch sent ahead going back to the queue, queue expiry 504,
// the full queue's 503, Server-Timing on both, the queue and worker metrics and /ping 500.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/subprocess.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_images.h"

namespace sg::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Polls `done` every 10 ms until it holds (true) or `timeout` passes (false).
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  for (const auto end = std::chrono::steady_clock::now() + timeout; !done();) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

fs::path FixtureModel(const std::string& name) {
  return SourceDir() / "tests/fixtures/models" / name;
}

// sg-serve on three free loopback ports, with `args` (--config FILE, or the quick form).
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> args, SpawnOptions options = {})
      : inference_(FreePort()), metrics_(FreePort()) {
    for (auto [flag, port] : {std::pair{"--inference-address", inference_},
                              {"--management-address", FreePort()},
                              {"--metrics-address", metrics_}}) {
      args.push_back(flag);
      args.push_back("127.0.0.1:" + std::to_string(port));
    }
    child_.emplace("sg-serve", args, std::move(options));
  }
  // Waits until /ping answers 200.
  bool WaitReady() {
    std::string why;
    const bool ready = child_->WaitReady(inference_, "/ping", 60s, &why);
    EXPECT_TRUE(ready) << why;
    return ready;
  }
  ChildProcess& child() { return *child_; }
  int inference() const { return inference_; }
  int metrics() const { return metrics_; }

  std::optional<HttpResponse> Post(const std::string& target, const std::string& body,
                                   std::chrono::milliseconds timeout = 60s) {
    HttpRequestSpec spec;
    spec.method = "POST";
    spec.target = target;
    spec.body = body;
    spec.timeout = timeout;
    std::string error;
    auto r = Http(inference_, spec, &error);
    EXPECT_TRUE(r) << target << ": " << error;
    return r;
  }
  // One sample of /metrics ("name{labels}"); -1 when absent or unreadable.
  double Metric(const std::string& series) const {
    auto m = HttpGet(metrics_, "/metrics");
    if (!m) return -1;
    std::istringstream in(m->body);
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
    }
    return -1;
  }
  // The worker processes: the front's children.
  std::set<pid_t> Workers() const {
    std::set<pid_t> out;
    std::error_code ec;
    const auto tasks = "/proc/" + std::to_string(child_->pid()) + "/task";
    for (const auto& task : fs::directory_iterator(tasks, ec)) {
      std::ifstream in(task.path() / "children");
      for (pid_t pid; in >> pid;) out.insert(pid);
    }
    return out;
  }

 private:
  int inference_, metrics_;
  std::optional<ChildProcess> child_;
};

fs::path WriteConfig(const TempDir& dir, const json& models) {
  return dir.Write("serve.json", json{{"models", models}}.dump(1));
}

std::string Environ(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(ServePromisesTest, TheQuickFormServesTheModel) {
  // tensor_tiny's answer to this input, computed offline by torch (tensor_tiny_reference.json).
  const json reference =
      json::parse(ReadFile(FixtureModel("tensor_tiny_reference.json")), nullptr, false);
  ASSERT_TRUE(reference.is_object());
  ServeProcess serve({"--model", "tiny=" + FixtureModel("tensor_tiny.pt").string(), "--handler",
                      "tensor", "--workers", "1", "--threads-per-worker", "1"});
  ASSERT_TRUE(serve.WaitReady());
  auto r = serve.Post("/predictions/tiny", json{{"data", reference["input"]}}.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body, nullptr, false);
  const json& want = reference["output"];
  ASSERT_TRUE(got.contains("data") && got["data"].is_array()) << r->body;
  ASSERT_EQ(got["data"].size(), want.size()) << r->body;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got["data"][i].get<double>(), want[i].get<double>(), 1e-5) << i;
  }
}

// /metrics passes `promtool check metrics` except for TorchServe's own families, which keep
// TorchServe's names (counters without _total) so that tools reading TorchServe read sg-serve:
// every problem promtool finds names one of those, none names sg-serve's own families.
TEST(ServePromisesTest, MetricsPassPromtoolButForTorchServesOwnNames) {
  ServeProcess serve({"--model", "tiny=" + FixtureModel("tensor_tiny.pt").string(), "--handler",
                      "tensor", "--workers", "1", "--threads-per-worker", "1"});
  ASSERT_TRUE(serve.WaitReady());
  auto ok = serve.Post("/predictions/tiny", json{{"data", {0.1, 0.2, 0.3, 0.4}}}.dump());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto missing = serve.Post("/predictions/none", "{}");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto metrics = HttpGet(serve.metrics(), "/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  for (const char* sample : {"sg_request_latency_seconds_bucket{", "sg_prediction_responses_total{",
                             "sg_workers_ready{", "ts_inference_latency_microseconds{"}) {
    EXPECT_NE(metrics->body.find(sample), std::string::npos) << sample;
  }
  TempDir dir;
  std::istringstream problems(PromtoolProblems(metrics->body, dir.path()));
  const std::set<std::string> torchserve = {"Requests2XX", "Requests4XX", "Requests5XX",
                                            "ts_inference_latency_microseconds",
                                            "ts_queue_latency_microseconds"};
  std::set<std::string> named;
  for (std::string line; std::getline(problems, line);) {
    const std::string name = line.substr(0, line.find(' '));
    EXPECT_TRUE(torchserve.count(name)) << line;
    named.insert(name);
  }
  EXPECT_EQ(named, torchserve) << metrics->body;  // promtool saw the whole text
}

TEST(ServePromisesTest, WarmupIterationsRunBeforeTheWorkerIsReady) {
  // input_shape [3] for a model that takes 4 values: a warm-up forward fails, so the model
  // cannot start; without warm-up it starts (and would fail on requests instead).
  TempDir dir;
  json model = {{"path", FixtureModel("tensor_tiny.pt").string()},
                {"handler", "tensor"},
                {"input_shape", {3}},
                {"workers", 1},
                {"warmup_iterations", 2}};
  {
    ServeProcess serve({"--config", WriteConfig(dir, {{"tiny", model}}).string()});
    auto status = serve.child().process().WaitFor(60s);
    ASSERT_TRUE(status) << "sg-serve started although its warm-up must fail";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << DescribeWaitStatus(*status);
    EXPECT_NE(serve.child().Log().find("warm-up failed"), std::string::npos) << serve.child().Log();
  }
  model["warmup_iterations"] = 0;
  ServeProcess serve({"--config", WriteConfig(dir, {{"tiny", model}}).string()});
  EXPECT_TRUE(serve.WaitReady());
}

TEST(ServePromisesTest, ImagesOverMaxPixelsAreRefusedWith400) {
  // A 56 x 56 PNG (3,136 pixels) against max_pixels 3,135 and 3,136. It is resized to 28 x 28
  // (784 pixels, under both), so the refusal is the decoder's bound on the image as sent, not
  // the bound on the resized image (which a 1 x 20,000 image would hit).
  TempDir dir;
  const std::string png =
      serve::testing::EncodePng(serve::testing::GradientPixels(56, 56, 1, 3), 56, 56, 1);
  auto model = [](int max_pixels) {
    return json{{"path", FixtureModel("fashion_tiny.pt").string()},
                {"labels", FixtureModel("fashion_index_to_name.json").string()},
                {"workers", 1},
                {"preprocess",
                 {{"resize", 28},
                  {"crop", 28},
                  {"channels", 1},
                  {"mean", {0.286}},
                  {"std", {0.353}},
                  {"max_pixels", max_pixels}}}};
  };
  ServeProcess serve({"--config",
                      WriteConfig(dir, {{"small", model(3135)}, {"exact", model(3136)}}).string(),
                      "--threads-per-worker", "1"});
  ASSERT_TRUE(serve.WaitReady());
  auto refused = serve.Post("/predictions/small", png);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  const json error = json::parse(refused->body, nullptr, false);
  EXPECT_EQ(error.value("code", 0), 400) << refused->body;
  EXPECT_NE(error.value("message", "").find("image too large: 56x56 pixels"), std::string::npos)
      << refused->body;
  auto served = serve.Post("/predictions/exact", png);
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200) << served->body;
}

TEST(ServePromisesTest, AnIdleWorkerThatDiesIsReplacedWithoutOpenMpPinningVariables) {
  // libgomp would pin the workers' threads with these; sg-serve removes them from the workers'
  // environment (and keeps the rest of it).
  TempDir dir;
  SpawnOptions env;
  env.set_env = {{"OMP_PLACES", "cores"}, {"KMP_AFFINITY", "compact"}, {"SG_PROMISE", "kept"}};
  json model = {{"path", FixtureModel("tensor_tiny.pt").string()},
                {"handler", "tensor"},
                {"input_shape", {4}},
                {"workers", 1}};
  ServeProcess serve(
      {"--config", WriteConfig(dir, {{"tiny", model}}).string(), "--threads-per-worker", "1"}, env);
  ASSERT_TRUE(serve.WaitReady());
  const std::string input = R"({"data": [1, 2, 3, 4]})";
  ASSERT_EQ(serve.Post("/predictions/tiny", input)->status, 200);
  auto expect_clean_environment = [](pid_t worker) {
    const std::string environ = Environ(worker);
    EXPECT_NE(environ.find("SG_PROMISE=kept"), std::string::npos) << "worker " << worker;
    EXPECT_EQ(environ.find("OMP_PLACES="), std::string::npos) << "worker " << worker;
    EXPECT_EQ(environ.find("KMP_AFFINITY="), std::string::npos) << "worker " << worker;
  };
  const std::set<pid_t> before = serve.Workers();
  ASSERT_EQ(before.size(), 1u);
  const pid_t victim = *before.begin();
  expect_clean_environment(victim);
  EXPECT_NE(Environ(serve.child().pid()).find("OMP_PLACES=cores"), std::string::npos)
      << "the front itself was started with the variables";

  // Idle (no request in flight) when killed: noticed and replaced without any request.
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  pid_t replacement = -1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto now = serve.Workers();
        if (now.size() != 1 || now.count(victim)) return false;
        replacement = *now.begin();
        return serve.Metric("sg_workers_ready{model_name=\"tiny\"}") == 1;
      },
      60s))
      << "no ready replacement for worker " << victim;
  EXPECT_EQ(serve.Metric("sg_worker_restarts_total{model_name=\"tiny\"}"), 1);
  expect_clean_environment(replacement);
  auto r = serve.Post("/predictions/tiny", input);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

// Server-Timing entries by name.
std::set<std::string> TimingNames(const std::string& header) {
  std::set<std::string> out;
  std::istringstream in(header);
  for (std::string entry; std::getline(in, entry, ',');) {
    const size_t start = entry.find_first_not_of(' ');
    if (start != std::string::npos) out.insert(entry.substr(start, entry.find(';') - start));
  }
  return out;
}

TEST(ServePromisesTest, AWorkerThatCannotComeBackLeavesTimeoutsExpiryAndUnhealthy) {
  // The model file is removed once the worker loaded it: after a timeout kills the worker, its
  // replacement cannot load, so nothing can answer and every outcome below is certain.
  TempDir dir;
  const fs::path copy = dir.path() / "slow.pt";
  fs::copy_file(FixtureModel("slow.pt"), copy);
  json model = {{"path", copy.string()},  {"handler", "tensor"}, {"input_shape", {2}},
                {"optimize", false},      {"workers", 1},        {"batch_size", 1},
                {"dispatch_ahead", true}, {"job_queue_size", 2}, {"response_timeout", "2s"}};
  ServeProcess serve(
      {"--config", WriteConfig(dir, {{"slow", model}}).string(), "--threads-per-worker", "1"});
  ASSERT_TRUE(serve.WaitReady());
  EXPECT_EQ(serve.Metric("sg_workers_ready{model_name=\"slow\"}"), 1);
  fs::remove(copy);
  // {"data": [rounds, 0]}: about 1 ms per round.
  auto post = [&](int rounds) {
    return std::async(std::launch::async, [&serve, rounds] {
      return serve.Post("/predictions/slow", json{{"data", {rounds, 0}}}.dump());
    });
  };
  auto batches = [&] { return serve.Metric("sg_batch_size_count{model_name=\"slow\"}"); };
  auto running = post(1000000);
  ASSERT_TRUE(WaitUntil([&] { return batches() == 1; }, 30s)) << "the long request never ran";
  auto ahead = post(1);  // sent ahead to the busy worker, still counted as queued
  ASSERT_TRUE(WaitUntil([&] { return batches() == 2; }, 30s)) << "nothing was sent ahead";
  auto queued = post(1);
  ASSERT_TRUE(
      WaitUntil([&] { return serve.Metric("sg_queue_pending{model_name=\"slow\"}") == 2; }, 30s))
      << serve.Metric("sg_queue_pending{model_name=\"slow\"}");
  // The queue is full: 503 at once, with Server-Timing (no worker stage).
  auto refused = serve.Post("/predictions/slow", json{{"data", {1, 0}}}.dump());
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_TRUE(TimingNames(refused->Header("server-timing")).count("total"))
      << refused->Header("server-timing");

  const std::string worker_timeout = "model \\\"slow\\\" did not answer within";
  const std::string queue_expiry = "no worker of model \\\"slow\\\" answered within";
  auto r = running.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504);
  EXPECT_NE(r->body.find(worker_timeout), std::string::npos) << r->body;
  // The batch sent ahead was never started: it went back to the queue and expired there.
  for (auto* reply : {&ahead, &queued}) {
    r = reply->get();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 504) << r->body;
    EXPECT_NE(r->body.find(queue_expiry), std::string::npos) << r->body;
    const auto names = TimingNames(r->Header("server-timing"));
    EXPECT_TRUE(names.count("queue") && names.count("total")) << r->Header("server-timing");
    EXPECT_FALSE(names.count("forward")) << r->Header("server-timing");
  }
  // Fewer ready workers than the model's minimum: Unhealthy, and the metrics say why.
  std::optional<HttpResponse> ping;
  EXPECT_TRUE(WaitUntil(
      [&] {
        ping = HttpGet(serve.inference(), "/ping");
        return ping && ping->status == 500;
      },
      30s));
  ASSERT_TRUE(ping);
  EXPECT_EQ(json::parse(ping->body, nullptr, false), json({{"status", "Unhealthy"}}));
  EXPECT_EQ(serve.Metric("sg_workers_ready{model_name=\"slow\"}"), 0);
  // The replacement is tried (and fails: the file is gone) after the dead worker is reaped.
  EXPECT_TRUE(WaitUntil(
      [&] { return serve.Metric("sg_worker_restarts_total{model_name=\"slow\"}") >= 1; }, 30s));
  EXPECT_EQ(serve.Metric("sg_queue_pending{model_name=\"slow\"}"), 0);
}

}  // namespace
}  // namespace sg::testing
