// sg-serve through real HTTP with real TorchScript models (tests/fixtures/models) and real
// worker processes.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "model_server/cpu_budget.h"
#include "model_server/ts_metrics.h"
#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_images.h"

namespace sg::serve {
namespace {

using nlohmann::json;
using sg::testing::ChildProcess;
using sg::testing::FreePort;
using sg::testing::Http;
using sg::testing::HttpGet;
using sg::testing::HttpRequestSpec;
using sg::testing::HttpResponse;
using sg::testing::TempDir;

std::string Png28(int seed) {
  return serve::testing::EncodePng(serve::testing::GradientPixels(28, 28, 1, seed), 28, 28, 1);
}

json FashionModel() {
  return {{"path", sg::testing::ModelFixture("fashion_tiny.pt")},
          {"labels", sg::testing::ModelFixture("fashion_index_to_name.json")},
          {"preprocess",
           {{"resize", 28}, {"crop", 28}, {"channels", 1}, {"mean", {0.286}}, {"std", {0.353}}}}};
}

json SlowModel() {
  return {{"path", sg::testing::ModelFixture("slow.pt")},
          {"handler", "tensor"},
          {"input_shape", {2}},
          {"optimize", false}};
}

// Asks the slow model for `rounds` 256x256 matmuls (about 1 ms each).
std::string SlowBody(int rounds) {
  return json{{"data", {rounds, 0}}}.dump();
}

// One running sg-serve with its three ports.
class Server {
 public:
  explicit Server(json models, json extra = json::object(), std::vector<std::string> args = {},
                  SpawnOptions options = {}) {
    inference_ = FreePort();
    management_ = FreePort();
    metrics_ = FreePort();
    json config = {{"inference_address", "127.0.0.1:" + std::to_string(inference_)},
                   {"management_address", "127.0.0.1:" + std::to_string(management_)},
                   {"metrics_address", "127.0.0.1:" + std::to_string(metrics_)},
                   {"models", std::move(models)}};
    config.update(extra);
    auto path = dir_.Write("serve.json", config.dump(1));
    std::vector<std::string> argv = {"--config", path.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    child_.emplace("sg-serve", argv, std::move(options));
    std::string why;
    ready_ = child_->WaitReady(inference_, "/ping", std::chrono::seconds(60), &why);
    EXPECT_TRUE(ready_) << why;
  }

  bool ready() const { return ready_; }
  int inference() const { return inference_; }
  int management() const { return management_; }
  int metrics() const { return metrics_; }
  ChildProcess& child() { return *child_; }

  std::optional<HttpResponse> Post(const std::string& target, const std::string& body,
                                   const std::string& content_type = "application/octet-stream",
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    HttpRequestSpec spec;
    spec.method = "POST";
    spec.target = target;
    spec.body = body;
    spec.headers = {{"Content-Type", content_type}};
    spec.timeout = timeout;
    std::string error;
    auto r = Http(inference_, spec, &error);
    EXPECT_TRUE(r) << error;
    return r;
  }

  json Describe(const std::string& model) {
    auto r = HttpGet(management_, "/models/" + model);
    EXPECT_TRUE(r && r->status == 200);
    return r ? json::parse(r->body)[0] : json();
  }

  // Waits until /ping is Healthy again.
  bool WaitHealthy(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = HttpGet(inference_, "/ping");
      if (r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

 private:
  TempDir dir_;
  int inference_ = 0, management_ = 0, metrics_ = 0;
  bool ready_ = false;
  std::optional<ChildProcess> child_;
};

// Every thread's Cpus_allowed_list of a process.
std::vector<std::string> ThreadAffinities(pid_t pid) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) {
        out.push_back(std::string(sg::Trim(line.substr(18))));
      }
    }
  }
  return out;
}

TEST(ServeTest, TorchServeApiEndToEnd) {
  Server server({{"fashion", FashionModel()},
                 {"vec",
                  {{"path", sg::testing::ModelFixture("tensor_tiny.pt")},
                   {"handler", "tensor"},
                   {"input_shape", {4}},
                   {"version", "2.0"}}},
                 {"score",
                  {{"path", sg::testing::ModelFixture("scorer_tiny.pt")},
                   {"handler", "image_scorer"},
                   {"preprocess", {{"resize", 32}, {"crop", 32}}}}}},
                {{"max_request_size", 100000}});
  ASSERT_TRUE(server.ready());

  auto ping = HttpGet(server.inference(), "/ping");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 200);
  EXPECT_EQ(json::parse(ping->body), json({{"status", "Healthy"}}));

  // Raw body: TorchServe's top-5, ordered by probability.
  auto raw = server.Post("/predictions/fashion", Png28(1), "image/png");
  ASSERT_TRUE(raw);
  ASSERT_EQ(raw->status, 200) << raw->body;
  EXPECT_EQ(raw->Header("content-type"), "application/json");
  auto ordered = json::parse(raw->body);
  ASSERT_EQ(ordered.size(), 5u);
  std::vector<double> probs;
  auto in_order = nlohmann::ordered_json::parse(raw->body);
  for (auto& [label, p] : in_order.items()) {
    probs.push_back(p.get<double>());
    EXPECT_NE(label.find_first_not_of("0123456789"), std::string::npos) << "label, not index";
  }
  EXPECT_TRUE(std::is_sorted(probs.rbegin(), probs.rend())) << raw->body;

  // Multipart field "data" with a version in the path gives the same answer.
  std::string multipart =
      "--B0undary\r\nContent-Disposition: form-data; name=\"data\"; "
      "filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n" +
      Png28(1) + "\r\n--B0undary--\r\n";
  auto form =
      server.Post("/predictions/fashion/1.0", multipart, "multipart/form-data; boundary=B0undary");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 200);
  EXPECT_EQ(form->body, raw->body);

  // JPEG works; PUT works.
  auto jpeg = serve::testing::EncodeJpeg(serve::testing::GradientPixels(40, 30, 3, 2), 40, 30, 3);
  HttpRequestSpec put;
  put.method = "PUT";
  put.target = "/predictions/fashion";
  put.body = jpeg;
  auto put_reply = Http(server.inference(), put);
  ASSERT_TRUE(put_reply);
  EXPECT_EQ(put_reply->status, 200) << put_reply->body;

  // Errors: JSON {"code", "type", "message"} with the right status.
  auto expect_error = [](const std::optional<HttpResponse>& r, int status, const std::string& in) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    auto body = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r->body;
    EXPECT_EQ(body["code"], status);
    EXPECT_TRUE(body["type"].is_string());
    EXPECT_NE(body["message"].get<std::string>().find(in), std::string::npos) << r->body;
  };
  expect_error(server.Post("/predictions/nope", Png28(1)), 404, "Model not found: nope");
  expect_error(server.Post("/predictions/fashion/9.9", Png28(1)), 404,
               "Model version: 9.9 does not exist");
  expect_error(server.Post("/predictions/fashion", "GIF89a..."), 400, "not PNG or JPEG");
  expect_error(server.Post("/predictions/fashion", Png28(1).substr(0, 60)), 400, "cannot decode");
  expect_error(server.Post("/predictions/fashion", std::string(150000, 'x')), 413, "");
  expect_error(HttpGet(server.inference(), "/predictions/fashion"), 405, "not allowed");
  expect_error(HttpGet(server.inference(), "/nothing/here"), 404, "not found");

  // Tensor handler: output as JSON; wrong shape and dtype are 400.
  auto vec = server.Post("/predictions/vec/2.0", R"({"data": [1, 2, 3, 4], "shape": [4]})",
                         "application/json");
  ASSERT_TRUE(vec);
  ASSERT_EQ(vec->status, 200) << vec->body;
  EXPECT_EQ(json::parse(vec->body)["shape"], json({3}));
  expect_error(server.Post("/predictions/vec", R"({"data": [1, 2, 3]})"), 400,
               "wrong tensor shape [3]");
  expect_error(server.Post("/predictions/vec", R"({"data": [1, 2, 3, 4], "dtype": "INT8"})"), 400,
               "unsupported dtype");
  // Image scorer.
  auto score =
      server.Post("/predictions/score",
                  serve::testing::EncodePng(serve::testing::GradientPixels(32, 32, 3), 32, 32, 3));
  ASSERT_TRUE(score);
  ASSERT_EQ(score->status, 200) << score->body;
  EXPECT_TRUE(json::parse(score->body)["score"].is_number());

  // Management.
  auto models = HttpGet(server.management(), "/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200);
  EXPECT_EQ(json::parse(models->body)["models"].size(), 3u);
  auto describe = server.Describe("fashion");
  EXPECT_EQ(describe["modelName"], "fashion");
  EXPECT_EQ(describe["jobQueueStatus"]["remainingCapacity"], 100);
  ASSERT_GE(describe["workers"].size(), 1u);
  auto worker = describe["workers"][0];
  EXPECT_EQ(worker["status"], "READY");
  EXPECT_GT(worker["pid"].get<int>(), 0);
  EXPECT_FALSE(worker["pinnedCpus"].get<std::string>().empty());
  EXPECT_EQ(worker["threadsReported"], worker["threads"]);
  auto missing = HttpGet(server.management(), "/models/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  // GET /models/{m}/{version} (TorchServe's describe of one version, "all" for every one).
  for (std::string version : {"1.0", "all"}) {
    auto described = HttpGet(server.management(), "/models/fashion/" + version);
    ASSERT_TRUE(described);
    EXPECT_EQ(described->status, 200) << version << ": " << described->body;
    EXPECT_EQ(json::parse(described->body)[0]["modelName"], "fashion") << version;
  }
  auto no_version = HttpGet(server.management(), "/models/fashion/9.9");
  ASSERT_TRUE(no_version);
  EXPECT_EQ(no_version->status, 404);
  EXPECT_NE(no_version->body.find("Model version: 9.9 does not exist for model: fashion"),
            std::string::npos)
      << no_version->body;

  // Metrics with TorchServe's names and labels, by the version the request named ("default"
  // when none: 4 requests here, 1 named 1.0).
  auto metrics = HttpGet(server.metrics(), "/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  std::string host = ",hostname=\"" + LocalHostname() + "\",} ";
  EXPECT_NE(metrics->body.find("ts_inference_requests_total{model_name=\"fashion\",model_version="
                               "\"default\"" +
                               host + "4.0\n"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("ts_inference_requests_total{model_name=\"fashion\",model_version="
                               "\"1.0\"" +
                               host + "1.0\n"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("ts_inference_latency_microseconds{model_name=\"fashion\""),
            std::string::npos);
  EXPECT_NE(metrics->body.find("ts_queue_latency_microseconds{model_name=\"vec\""),
            std::string::npos);
  EXPECT_NE(metrics->body.find("sg_request_latency_seconds_bucket{model_name=\"score\""),
            std::string::npos);

  // Open Inference Protocol v2: the same model, tensor for tensor.
  auto live = HttpGet(server.inference(), "/v2/health/ready");
  ASSERT_TRUE(live);
  EXPECT_EQ(json::parse(live->body), json({{"ready", true}}));
  auto alive = HttpGet(server.inference(), "/v2/health/live");
  ASSERT_TRUE(alive);
  EXPECT_EQ(alive->status, 200);
  EXPECT_EQ(json::parse(alive->body), json({{"live", true}}));
  auto unknown_model = HttpGet(server.inference(), "/v2/models/nope");
  ASSERT_TRUE(unknown_model);
  EXPECT_EQ(unknown_model->status, 404) << unknown_model->body;
  auto meta = HttpGet(server.inference(), "/v2/models/vec");
  ASSERT_TRUE(meta);
  EXPECT_EQ(json::parse(meta->body)["inputs"][0]["shape"], json({-1, 4}));
  json infer = {{"id", "q1"},
                {"inputs",
                 {{{"name", "input__0"},
                   {"datatype", "FP32"},
                   {"shape", {2, 4}},
                   {"data", {1, 2, 3, 4, -1, 0, 0.5, 2}}}}}};
  auto v2 = server.Post("/v2/models/vec/versions/2.0/infer", infer.dump(), "application/json");
  ASSERT_TRUE(v2);
  ASSERT_EQ(v2->status, 200) << v2->body;
  auto v2_out = json::parse(v2->body);
  EXPECT_EQ(v2_out["id"], "q1");
  EXPECT_EQ(v2_out["outputs"][0]["shape"], json({2, 3}));
  auto second_row = server.Post("/predictions/vec", R"({"data": [-1, 0, 0.5, 2]})");
  ASSERT_TRUE(second_row);
  auto row = json::parse(second_row->body)["data"];
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(v2_out["outputs"][0]["data"][3 + i].get<double>(), row[i].get<double>(), 1e-6);
  }
  auto v2_bad = server.Post("/v2/models/vec/infer", R"({"inputs": [{"datatype": "FP32",
      "shape": [1, 3], "data": [1, 2, 3]}]})");
  ASSERT_TRUE(v2_bad);
  EXPECT_EQ(v2_bad->status, 400);
  EXPECT_NE(json::parse(v2_bad->body)["error"].get<std::string>().find("wrong tensor shape"),
            std::string::npos);

  // SIGTERM: clean exit.
  int status = server.child().Stop(std::chrono::seconds(15));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
}

TEST(ServeTest, WorkersArePinnedToDisjointCpusWithPlannedThreads) {
  auto allowed = CurrentAffinity();
  if (allowed.size() < 2) GTEST_SKIP() << "needs 2 CPUs";
  json model = FashionModel();
  model["workers"] = 2;
  // libgomp would pin every OpenMP thread of every worker to CPU 0 with these set.
  SpawnOptions env;
  env.set_env = {{"OMP_PROC_BIND", "true"}, {"GOMP_CPU_AFFINITY", "0"}};
  Server server({{"fashion", model}}, {{"cpu", {{"threads_per_worker", 1}}}},
                {"--log-level", "debug"}, env);
  ASSERT_TRUE(server.ready());
  // A few predictions so every pool that exists has started its threads.
  for (int i = 0; i < 6; ++i) ASSERT_EQ(server.Post("/predictions/fashion", Png28(i))->status, 200);
  auto describe = server.Describe("fashion");
  ASSERT_EQ(describe["workers"].size(), 2u);
  std::set<std::string> seen;
  for (const auto& w : describe["workers"]) {
    std::string cpus = w["pinnedCpus"];
    EXPECT_TRUE(seen.insert(cpus).second) << "CPU sets must be disjoint";
    EXPECT_EQ(w["threadsReported"], 1);
    auto affinities = ThreadAffinities(w["pid"].get<pid_t>());
    ASSERT_FALSE(affinities.empty());
    for (const auto& a : affinities) EXPECT_EQ(a, cpus) << "a thread of worker " << w["pid"];
    // The worker's environment has the OpenMP pinning variables removed.
    std::ifstream in("/proc/" + std::to_string(w["pid"].get<pid_t>()) + "/environ");
    std::string environ((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(environ.find("OMP_PROC_BIND="), std::string::npos);
    EXPECT_EQ(environ.find("GOMP_CPU_AFFINITY="), std::string::npos);
    EXPECT_NE(environ.find("OMP_NUM_THREADS=1"), std::string::npos);
  }

  // Re-plan to one worker: the management API restarts the workers with the new plan.
  HttpRequestSpec put;
  put.method = "PUT";
  put.target = "/models/fashion?min_worker=1&synchronous=true";
  put.timeout = std::chrono::seconds(60);
  auto r = Http(server.management(), put);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(server.WaitHealthy());
  for (int i = 0; i < 4; ++i) ASSERT_EQ(server.Post("/predictions/fashion", Png28(i))->status, 200);
  describe = server.Describe("fashion");
  ASSERT_EQ(describe["workers"].size(), 1u);
  auto w = describe["workers"][0];
  EXPECT_EQ(w["threads"], 1);  // threads_per_worker is fixed by the config
  EXPECT_EQ(w["threadsReported"], 1);
}

// A counter or histogram sample from /metrics text, e.g. `sg_batch_size_count{model_name="m"}`.
double MetricValue(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

// Polls `done` until it holds (true) or `timeout` passes (false).
bool WaitUntil(const std::function<bool()>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Dynamic batching through HTTP: concurrent requests are served in fewer batches than requests
// (the batch-size histogram says so) and every answer equals the one the same image gets alone.
TEST(ServeTest, ConcurrentRequestsAreBatchedAndAnswerAsAlone) {
  // The same model twice: "fashion" answers each lone request in a batch of its own; "batched"
  // waits up to 30 s for a full batch of 8, so the 8 concurrent requests make exactly one batch
  // however slowly their threads start (a 400 ms window let a loaded machine split them).
  json model = FashionModel();
  model["workers"] = 1;
  model["batch_size"] = 8;
  model["max_batch_delay_ms"] = 1;
  model["topk"] = 10;
  json batched = model;
  batched["max_batch_delay_ms"] = 30000;
  Server server(json{{"fashion", model}, {"batched", batched}});
  ASSERT_TRUE(server.ready());
  constexpr int kImages = 8;
  auto batches = [](const std::string& name) {
    return "sg_batch_size_count{model_name=\"" + name + "\"}";
  };
  auto samples = [](const std::string& name) {
    return "sg_batch_size_sum{model_name=\"" + name + "\"}";
  };

  std::vector<json> alone;
  for (int i = 0; i < kImages; ++i) {
    auto r = server.Post("/predictions/fashion", Png28(i));
    ASSERT_TRUE(r && r->status == 200);
    alone.push_back(json::parse(r->body));
  }
  auto before = HttpGet(server.metrics(), "/metrics");
  ASSERT_TRUE(before);
  EXPECT_EQ(MetricValue(before->body, batches("fashion")), kImages) << "one batch per lone request";

  std::vector<std::future<std::optional<HttpResponse>>> futures;
  for (int i = 0; i < kImages; ++i) {
    futures.push_back(std::async(std::launch::async, [&server, i] {
      return server.Post("/predictions/batched", Png28(i));
    }));
  }
  for (int i = 0; i < kImages; ++i) {
    auto r = futures[i].get();
    ASSERT_TRUE(r && r->status == 200);
    const json together = json::parse(r->body);
    ASSERT_EQ(together.size(), alone[i].size());
    for (const auto& [label, p] : alone[i].items()) {
      ASSERT_TRUE(together.contains(label)) << label;
      EXPECT_NEAR(together[label].get<double>(), p.get<double>(), 1e-5)
          << "image " << i << " " << label;
    }
  }
  auto after = HttpGet(server.metrics(), "/metrics");
  ASSERT_TRUE(after);
  EXPECT_EQ(MetricValue(after->body, samples("batched")), kImages);
  EXPECT_EQ(MetricValue(after->body, batches("batched")), 1)
      << "concurrent requests were not batched";
}

// Server-Timing entries ("queue;dur=0.012, forward;dur=9.710, ...") in microseconds by name.
std::map<std::string, int64_t> ServerTimingMicros(const std::string& header) {
  std::map<std::string, int64_t> out;
  for (const auto& entry : Split(header, ',')) {
    auto text = std::string(Trim(entry));
    auto at = text.find(";dur=");
    if (at == std::string::npos) continue;
    out[text.substr(0, at)] = std::llround(std::stod(text.substr(at + 5)) * 1000);
  }
  return out;
}

// Every prediction says where its time went (Server-Timing, the worker's own stage times), and
// /metrics has the same stages as per-model histograms: they agree with each other, fit inside
// the latency the front and the client measured, and the model's forward dominates a model
// that computes.
TEST(ServeTest, PredictionsReportServerTimingAndWorkerStageHistograms) {
  json fashion = FashionModel();
  fashion["workers"] = 1;
  json slow = SlowModel();
  slow["workers"] = 1;
  Server server(json{{"fashion", fashion}, {"slow", slow}});
  ASSERT_TRUE(server.ready());
  struct Case {
    std::string model, body, content_type;
  };
  for (const auto& c :
       {Case{"fashion", Png28(3), "image/png"}, Case{"slow", SlowBody(20), "application/json"}}) {
    SCOPED_TRACE(c.model);
    constexpr int kRequests = 5;
    int64_t header_forward_us = 0, header_stages_us = 0;
    for (int i = 0; i < kRequests; ++i) {
      auto start = std::chrono::steady_clock::now();
      auto r = server.Post("/predictions/" + c.model, c.body, c.content_type);
      auto client_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
      EXPECT_EQ(r->Header("content-type"), "application/json");  // TorchServe's reply, unchanged
      auto t = ServerTimingMicros(r->Header("server-timing"));
      ASSERT_EQ(t.size(), 5u) << r->Header("server-timing");
      for (const char* name : {"queue", "preprocess", "forward", "postprocess", "total"}) {
        ASSERT_TRUE(t.count(name)) << name << " in " << r->Header("server-timing");
        EXPECT_GE(t[name], 0) << name;
      }
      EXPECT_GT(t["preprocess"], 0);
      EXPECT_GT(t["forward"], 0);
      int64_t stages = t["preprocess"] + t["forward"] + t["postprocess"];
      // The worker ran between dispatch and reply, inside what the front and the client saw.
      EXPECT_LE(t["queue"] + stages, t["total"]) << r->Header("server-timing");
      EXPECT_LE(t["total"], client_us) << r->Header("server-timing");
      if (c.model == "slow") {
        EXPECT_GT(t["forward"], t["preprocess"] + t["postprocess"]) << r->Header("server-timing");
      }
      header_forward_us += t["forward"];
      header_stages_us += stages;
    }
    auto metrics = HttpGet(server.metrics(), "/metrics");
    ASSERT_TRUE(metrics);
    auto value = [&](const std::string& name) {
      return MetricValue(metrics->body, name + "{model_name=\"" + c.model + "\"}");
    };
    for (const char* stage : {"preprocess", "forward", "postprocess"}) {
      SCOPED_TRACE(stage);
      const std::string name = std::string("sg_worker_") + stage + "_seconds";
      EXPECT_EQ(value(name + "_count"), kRequests) << "one observation per batch";
      EXPECT_NE(metrics->body.find(name + "_bucket{model_name=\"" + c.model + "\",le=\"1e-05\"}"),
                std::string::npos)
          << metrics->body;
    }
    // The histograms hold exactly what the headers said (both are whole microseconds).
    EXPECT_NEAR(value("sg_worker_forward_seconds_sum") * 1e6, header_forward_us, 1);
    double stages_s = value("sg_worker_preprocess_seconds_sum") +
                      value("sg_worker_forward_seconds_sum") +
                      value("sg_worker_postprocess_seconds_sum");
    EXPECT_NEAR(stages_s * 1e6, header_stages_us, 3);
    EXPECT_LE(stages_s, value("sg_request_latency_seconds_sum"));
  }
}

// front_cpus: the front process runs on CPUs of its own, disjoint from the worker's, and the
// image decoding and preprocessing run there; the replies are the same as when the worker
// preprocesses (same code, same floats, same model), errors included.
TEST(ServeTest, FrontCpusPreprocessInTheFrontOnItsOwnCpusWithTheSameReplies) {
  auto allowed = CurrentAffinity();
  if (allowed.size() < 2) GTEST_SKIP() << "needs 2 CPUs";
  json model = FashionModel();
  model["workers"] = 1;
  Server front(json{{"fashion", model}}, {{"cpu", {{"front_cpus", 1}, {"threads_per_worker", 1}}}});
  Server plain(json{{"fashion", model}}, {{"cpu", {{"threads_per_worker", 1}}}});
  ASSERT_TRUE(front.ready());
  ASSERT_TRUE(plain.ready());
  constexpr int kImages = 6;
  for (int i = 0; i < kImages; ++i) {
    auto a = front.Post("/predictions/fashion", Png28(i), "image/png");
    auto b = plain.Post("/predictions/fashion", Png28(i), "image/png");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->status, 200) << a->body;
    EXPECT_EQ(a->body, b->body);
    auto t = ServerTimingMicros(a->Header("server-timing"));
    EXPECT_GT(t["preprocess"], 0) << a->Header("server-timing");
    EXPECT_LE(t["preprocess"] + t["forward"], t["total"]) << a->Header("server-timing");
  }
  for (const std::string& bad : {std::string("not an image"), Png28(1).substr(0, 60)}) {
    auto a = front.Post("/predictions/fashion", bad, "image/png");
    auto b = plain.Post("/predictions/fashion", bad, "image/png");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->status, 400);
    EXPECT_EQ(a->body, b->body);
  }

  // Where it ran: every front thread on the front's CPUs, every worker thread on the worker's,
  // the two disjoint.
  auto worker = front.Describe("fashion")["workers"][0];
  // The samples reach the worker through the slot's shared batch memory (a 28x28 crop is a
  // fixed size), which the worker maps.
  std::ifstream maps("/proc/" + std::to_string(worker["pid"].get<pid_t>()) + "/maps");
  std::string map_text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  EXPECT_NE(map_text.find("memfd:sg-serve-batches"), std::string::npos);
  std::string worker_cpus = worker["pinnedCpus"];
  for (const auto& a : ThreadAffinities(worker["pid"].get<pid_t>())) EXPECT_EQ(a, worker_cpus);
  auto front_affinities = ThreadAffinities(front.child().pid());
  ASSERT_FALSE(front_affinities.empty());
  auto front_cpus = sg::serve::ParseCpuList(front_affinities[0]);
  ASSERT_TRUE(front_cpus && !front_cpus->empty()) << front_affinities[0];
  for (const auto& a : front_affinities) EXPECT_EQ(a, front_affinities[0]) << "a front thread";
  auto worker_list = sg::serve::ParseCpuList(worker_cpus);
  ASSERT_TRUE(worker_list) << worker_cpus;
  for (int c : *worker_list) {
    EXPECT_EQ(std::count(front_cpus->begin(), front_cpus->end(), c), 0)
        << "cpu " << c << " is the worker's and the front's";
  }

  // The front's preprocessing is measured; the worker only decoded the samples it was sent.
  auto metrics = HttpGet(front.metrics(), "/metrics");
  ASSERT_TRUE(metrics);
  auto value = [&](const std::string& name) {
    return MetricValue(metrics->body, name + "{model_name=\"fashion\"}");
  };
  EXPECT_EQ(value("sg_front_preprocess_seconds_count"), kImages);
  EXPECT_GT(value("sg_front_preprocess_seconds_sum"), 0);
  EXPECT_EQ(value("sg_worker_forward_seconds_count"), kImages);
  EXPECT_EQ(MetricValue(metrics->body,
                        "sg_prediction_responses_total{model_name=\"fashion\",code=\"400\"}"),
            2);
  auto plain_metrics = HttpGet(plain.metrics(), "/metrics");
  ASSERT_TRUE(plain_metrics);
  EXPECT_EQ(
      MetricValue(plain_metrics->body, "sg_front_preprocess_seconds_count{model_name=\"fashion\"}"),
      0);
}

// The OS threads of a worker, counted in /proc after real inference: libtorch's two compute
// pools are each sized to the worker's share T: the OpenMP team (the main thread plus T - 1
// libgomp threads) and the pthreadpool that XNNPACK/NNPACK use (T - 1 threads besides the
// caller). Nothing else runs in a worker (its socket I/O is on the main thread), so a worker
// has exactly 2T - 1 threads, all on its own CPUs.
TEST(ServeTest, WorkerRunsExactlyItsShareOfThreads) {
  auto allowed = CurrentAffinity();
  if (allowed.size() < 2) GTEST_SKIP() << "needs 2 CPUs";
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads_per_worker " + std::to_string(threads));
    json model = FashionModel();
    model["workers"] = 1;
    Server server({{"fashion", model}}, {{"cpu", {{"threads_per_worker", threads}}}});
    ASSERT_TRUE(server.ready());
    for (int i = 0; i < 8; ++i) {
      ASSERT_EQ(server.Post("/predictions/fashion", Png28(i))->status, 200);
    }
    auto w = server.Describe("fashion")["workers"][0];
    EXPECT_EQ(w["threadsReported"], threads);
    const std::string cpus = w["pinnedCpus"];
    auto affinities = ThreadAffinities(w["pid"].get<pid_t>());
    EXPECT_EQ(affinities.size(), static_cast<size_t>(2 * threads - 1));
    for (const auto& a : affinities) EXPECT_EQ(a, cpus);
  }
}

// The "slow" model's state from the server itself (tests wait on it instead of sleeping: a
// loaded machine only makes them slower, never wrong): batches sent to a worker, and pending
// requests.
// Batches sent to `model`'s workers so far (counted when a batch reaches a worker), and its
// requests waiting in the queue: what the tests wait on instead of sleeping.
double Batches(Server& server, const std::string& model) {
  auto m = HttpGet(server.metrics(), "/metrics");
  return m ? MetricValue(m->body, "sg_batch_size_count{model_name=\"" + model + "\"}") : -1;
}
int Pending(Server& server, const std::string& model) {
  return server.Describe(model)["jobQueueStatus"]["pendingRequests"].get<int>();
}
double SlowBatches(Server& server) {
  return Batches(server, "slow");
}
int SlowPending(Server& server) {
  return Pending(server, "slow");
}

using Reply = std::future<std::optional<HttpResponse>>;
// A request to the slow model that computes for `rounds`, in the background.
Reply PostSlow(Server& server, int rounds) {
  return std::async(std::launch::async, [&server, rounds] {
    return server.Post("/predictions/slow", SlowBody(rounds), "application/json",
                       std::chrono::seconds(60));
  });
}

// After the slow model's worker was killed with signal 9: the request it was running failed at
// once with a 503 that says why, and the queued ones were served by its replacement.
void ExpectOnlyTheRunningRequestFailed(Reply& running, std::vector<Reply>& queued) {
  auto reply = running.get();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 503);
  EXPECT_NE(reply->body.find("died (killed by signal 9"), std::string::npos) << reply->body;
  for (auto& q : queued) {
    auto r = q.get();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
}

TEST(ServeTest, KilledWorkerFailsOnlyItsRequestsAndIsReplacedOnTheSameCpus) {
  json slow = SlowModel();
  slow["workers"] = 1;
  json fashion = FashionModel();
  fashion["workers"] = 1;
  Server server(json{{"slow", slow}, {"fashion", fashion}}, {{"cpu", {{"threads_per_worker", 1}}}});
  ASSERT_TRUE(server.ready());
  auto before = server.Describe("slow")["workers"];
  ASSERT_EQ(before.size(), 1u);
  pid_t victim = before[0]["pid"].get<pid_t>();
  pid_t bystander = server.Describe("fashion")["workers"][0]["pid"].get<pid_t>();
  // The victim runs a long request: it has been sent to the worker once the pool counted its
  // batch. Three more then wait in its queue (not in flight).
  auto in_flight = PostSlow(server, 1000000);
  ASSERT_TRUE(WaitUntil([&] { return SlowBatches(server) == 1; })) << "the long request never ran";
  std::vector<Reply> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(PostSlow(server, 1));
  ASSERT_TRUE(WaitUntil([&] { return SlowPending(server) == 3; }))
      << "queued: " << SlowPending(server);
  EXPECT_EQ(SlowBatches(server), 1) << "a queued request reached the busy worker";

  // Load on the other model meanwhile, before and after the kill.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  auto stop_clients = [&] {
    stop = true;
    for (auto& t : clients) t.join();
    clients.clear();
  };
  struct Joiner {
    std::function<void()> f;
    ~Joiner() { f(); }
  } joiner{stop_clients};  // also on an early ASSERT return
  for (int c = 0; c < 3; ++c) {
    clients.emplace_back([&, c] {
      while (!stop) {
        HttpRequestSpec spec;
        spec.method = "POST";
        spec.target = "/predictions/fashion";
        spec.body = Png28(c);
        auto r = Http(server.inference(), spec);
        (r && r->status == 200 ? ok : failed)++;
      }
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return ok >= 3; })) << "the other model is not serving";
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  const int ok_at_kill = ok;

  ExpectOnlyTheRunningRequestFailed(in_flight, queued);
  // The other model kept serving through the kill and the restart, without a failure.
  EXPECT_TRUE(WaitUntil([&] { return ok >= ok_at_kill + 3; })) << ok << " ok at the end";
  stop_clients();
  EXPECT_EQ(failed.load(), 0);

  ASSERT_TRUE(server.WaitHealthy());
  auto after = server.Describe("slow")["workers"];
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after[0]["pid"], victim);
  EXPECT_EQ(after[0]["pinnedCpus"], before[0]["pinnedCpus"]);
  EXPECT_EQ(after[0]["restarts"], 1);
  EXPECT_EQ(server.Describe("fashion")["workers"][0]["pid"], bystander);
  for (const auto& a : ThreadAffinities(after[0]["pid"].get<pid_t>())) {
    EXPECT_EQ(a, after[0]["pinnedCpus"].get<std::string>());
  }
  auto metrics = HttpGet(server.metrics(), "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("sg_worker_restarts_total{model_name=\"slow\"} 1"),
            std::string::npos);
}

// dispatch_ahead: a busy worker is sent its next batch before it finishes the current one. That
// batch still counts as queued (job_queue_size, pending), and when the worker dies it goes back
// to the queue: only the request the worker was running fails.
TEST(ServeTest, DispatchAheadBatchCountsAsQueuedAndSurvivesTheWorkersDeath) {
  json slow = SlowModel();
  slow["workers"] = 1;
  slow["dispatch_ahead"] = true;
  slow["job_queue_size"] = 3;
  Server server(json{{"slow", slow}});
  ASSERT_TRUE(server.ready());
  auto describe = server.Describe("slow");
  EXPECT_EQ(describe["dispatchAhead"], true);
  pid_t victim = describe["workers"][0]["pid"].get<pid_t>();
  auto running = PostSlow(server, 1000000);
  ASSERT_TRUE(WaitUntil([&] { return SlowBatches(server) == 1; })) << "the long request never ran";
  std::vector<Reply> waiting;
  for (int i = 0; i < 3; ++i) waiting.push_back(PostSlow(server, 1));
  // One of them is sent ahead to the busy worker; all three are pending.
  ASSERT_TRUE(WaitUntil([&] { return SlowBatches(server) == 2 && SlowPending(server) == 3; }))
      << SlowBatches(server) << " batches, " << SlowPending(server) << " pending";
  auto refused = server.Post("/predictions/slow", SlowBody(1), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503) << "the batch sent ahead counts against job_queue_size";

  ASSERT_EQ(kill(victim, SIGKILL), 0);
  ExpectOnlyTheRunningRequestFailed(running, waiting);
  EXPECT_EQ(SlowPending(server), 0);
  auto after = server.Describe("slow")["workers"][0];
  EXPECT_NE(after["pid"], victim);
  EXPECT_EQ(after["restarts"], 1);
}

TEST(ServeTest, TimeoutQueueFullAndGracefulStop) {
  json slow = SlowModel();
  slow["workers"] = 1;
  json strict = SlowModel();
  strict["workers"] = 1;
  strict["job_queue_size"] = 1;
  strict["response_timeout"] = "3s";
  Server server(json{{"slow", slow}, {"strict", strict}});
  ASSERT_TRUE(server.ready());

  // The worker runs far past response_timeout: 504, and the worker is replaced.
  auto start = std::chrono::steady_clock::now();
  auto busy = std::async(std::launch::async, [&] {
    return server.Post("/predictions/strict", SlowBody(1000000), "application/json");
  });
  ASSERT_TRUE(WaitUntil([&] { return Batches(server, "strict") == 1; }))
      << "the long request never reached the worker";
  // One more fits the queue (capacity 1); the next is refused at once with 503.
  auto queued = std::async(std::launch::async, [&] {
    return server.Post("/predictions/strict", SlowBody(1), "application/json");
  });
  ASSERT_TRUE(WaitUntil([&] { return Pending(server, "strict") == 1; }))
      << "the second request never queued";
  auto refused_start = std::chrono::steady_clock::now();
  auto refused = server.Post("/predictions/strict", SlowBody(1), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_NE(refused->body.find("has no worker to serve inference request"), std::string::npos);
  // At once: a request that waited for room in the queue would wait for the busy one's 3 s
  // timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - refused_start, std::chrono::milliseconds(2500));

  auto timed_out = busy.get();
  ASSERT_TRUE(timed_out);
  EXPECT_EQ(timed_out->status, 504) << timed_out->body;
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  // The queued request is answered by the replacement worker or times out itself: never hangs.
  auto second = queued.get();
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->status == 200 || second->status == 504) << second->status;
  ASSERT_TRUE(server.WaitHealthy());
  auto r = server.Post("/predictions/strict", SlowBody(1), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  // SIGTERM while a request runs: it is answered, then the server exits 0.
  auto inflight = std::async(std::launch::async, [&] {
    return server.Post("/predictions/slow", SlowBody(60), "application/json",
                       std::chrono::seconds(30));
  });
  ASSERT_TRUE(WaitUntil([&] { return SlowBatches(server) == 1; }))
      << "the request never reached the worker";
  server.child().process().Signal(SIGTERM);
  auto answer = inflight.get();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200) << answer->body;
  auto status = server.child().process().WaitFor(std::chrono::seconds(15));
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << DescribeWaitStatus(*status);
}

// Load beyond the bounded queue is refused with 503 while the worker is busy, and refused
// requests leave nothing behind: ten times more of them (64 KiB bodies each) do not grow the
// front process's memory.
TEST(ServeTest, OverloadIsRefusedAndMemoryStaysFlat) {
  json strict = SlowModel();
  strict["workers"] = 1;
  strict["job_queue_size"] = 1;
  Server server(json{{"strict", strict}});
  ASSERT_TRUE(server.ready());
  // The worker is busy for tens of seconds (1 ms per round); one more request fills the queue.
  // Neither is answered: the server is killed at the end.
  auto post = [&](int rounds) {
    HttpRequestSpec spec;
    spec.method = "POST";
    spec.target = "/predictions/strict";
    spec.body = SlowBody(rounds);
    spec.headers = {{"Content-Type", "application/json"}};
    spec.timeout = std::chrono::seconds(90);
    return Http(server.inference(), spec);
  };
  auto busy = std::async(std::launch::async, post, 30000);
  ASSERT_TRUE(WaitUntil([&] { return Batches(server, "strict") == 1; }))
      << "the long request never reached the worker";
  auto queued = std::async(std::launch::async, post, 1);
  ASSERT_TRUE(WaitUntil([&] { return Pending(server, "strict") == 1; }))
      << "the second request never queued";

  // `n` requests from 8 threads, each with a 64 KiB body; returns how many got 503.
  const std::string body = SlowBody(1) + std::string(64 << 10, ' ');
  auto flood = [&](int n) {
    std::atomic<int> next{0}, refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        while (next.fetch_add(1) < n) {
          HttpRequestSpec spec;
          spec.method = "POST";
          spec.target = "/predictions/strict";
          spec.body = body;
          spec.headers = {{"Content-Type", "application/json"}};
          auto r = Http(server.inference(), spec);
          if (r && r->status == 503) refused.fetch_add(1);
        }
      });
    }
    for (auto& t : threads) t.join();
    return refused.load();
  };
  const pid_t front = server.child().pid();
  EXPECT_EQ(flood(200), 200);
  const int64_t rss_after_200 = sg::testing::ProcStatusKiB(front, "VmRSS");
  EXPECT_EQ(flood(2000), 2000);
  const int64_t rss_after_2200 = sg::testing::ProcStatusKiB(front, "VmRSS");
  ASSERT_GT(rss_after_200, 0);
  // Kept bodies alone would be 2000 x 64 KiB = 125 MiB.
  EXPECT_LT(rss_after_2200 - rss_after_200, 16 << 10)
      << "RSS " << rss_after_200 << " KiB -> " << rss_after_2200 << " KiB";
  server.child().process().Signal(SIGKILL);  // the busy request is not the point here
  EXPECT_FALSE(busy.get()) << "the busy request was answered: the queue was not full";
  queued.get();
}

TEST(ServeTest, BadConfigAndBadModelAreClearErrors) {
  TempDir dir;
  auto config = dir.Write("bad.json", R"({"models": {"m": {"path": "x.pt", "batchsize": 2}}})");
  ChildProcess bad("sg-serve", {"--config", config.string()});
  auto status = bad.process().WaitFor(std::chrono::seconds(20));
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 2);
  EXPECT_NE(bad.Log().find(config.string() + ": $.models.m.batchsize: unknown key"),
            std::string::npos)
      << bad.Log();

  auto not_torchscript = dir.Write("junk.pt", "not a model");
  int port = FreePort();
  ChildProcess junk("sg-serve", {"--model", "junk=" + not_torchscript.string(),
                                 "--inference-address", "127.0.0.1:" + std::to_string(port),
                                 "--management-address", "127.0.0.1:" + std::to_string(FreePort()),
                                 "--metrics-address", "127.0.0.1:" + std::to_string(FreePort())});
  status = junk.process().WaitFor(std::chrono::seconds(30));
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  EXPECT_NE(junk.Log().find("cannot start: model \"junk\": cannot load"), std::string::npos)
      << junk.Log();
}

TEST(ServeTest, PlanCommandPrintsReasons) {
  ChildProcess plan("sg-serve", {"plan", "--workers", "3"});
  auto status = plan.process().WaitFor(std::chrono::seconds(20));
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_NE(plan.Log().find("budget: "), std::string::npos) << plan.Log();
  EXPECT_NE(plan.Log().find("worker 0: cpus "), std::string::npos) << plan.Log();
  ChildProcess doctor("sg-serve", {"doctor"}, [] {
    SpawnOptions o;
    o.set_env = {{"OMP_PROC_BIND", "true"}};
    return o;
  }());
  status = doctor.process().WaitFor(std::chrono::seconds(30));
  ASSERT_TRUE(status);
  EXPECT_NE(doctor.Log().find("blas: loaded: "), std::string::npos) << doctor.Log();
  EXPECT_NE(doctor.Log().find("openmp: OMP_PROC_BIND=true"), std::string::npos) << doctor.Log();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << doctor.Log();  // warnings only
  // A BAD finding (here an oversubscribed plan) makes doctor exit 1, as docs/model-server.md says.
  ChildProcess bad("sg-serve", {"--workers", "4", "--threads-per-worker", "2", "doctor"});
  status = bad.process().WaitFor(std::chrono::seconds(30));
  ASSERT_TRUE(status);
  EXPECT_NE(bad.Log().find("BAD   plan: "), std::string::npos) << bad.Log();
  EXPECT_EQ(WEXITSTATUS(*status), 1) << bad.Log();
}

}  // namespace
}  // namespace sg::serve
