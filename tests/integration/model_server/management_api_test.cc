// sg-serve's TorchServe management API, KServe v1/v2 requests, x-request-id and the metrics API,
// through real HTTP with real TorchScript models (tests/fixtures/models), real worker processes
// and real .mar archives in a model store (issue 16).
#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "model_server/ts_metrics.h"
#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_archives.h"
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

json FashionModel(int workers) {
  return {{"path", sg::testing::ModelFixture("fashion_tiny.pt")},
          {"labels", sg::testing::ModelFixture("fashion_index_to_name.json")},
          {"workers", workers},
          {"preprocess",
           {{"resize", 28}, {"crop", 28}, {"channels", 1}, {"mean", {0.286}}, {"std", {0.353}}}}};
}

std::string Png28(int seed) {
  return serve::testing::EncodePng(serve::testing::GradientPixels(28, 28, 1, seed), 28, 28, 1);
}

// One running sg-serve: from a JSON config (`models` not null) or TorchServe's way, a model store
// with the model API on and no model.
class Serve {
 public:
  explicit Serve(const json& models, const std::filesystem::path& store = {}) {
    inference_ = FreePort();
    management_ = FreePort();
    metrics_ = FreePort();
    std::vector<std::string> args = {
        "--inference-address",  "127.0.0.1:" + std::to_string(inference_),
        "--management-address", "127.0.0.1:" + std::to_string(management_),
        "--metrics-address",    "127.0.0.1:" + std::to_string(metrics_)};
    if (!models.is_null()) {
      json config = {{"inference_address", args[1]},
                     {"management_address", args[3]},
                     {"metrics_address", args[5]},
                     {"models", models}};
      args = {"--config", dir_.Write("serve.json", config.dump(1)).string()};
    } else {
      args.insert(args.end(), {"--model-store", store.string(), "--enable-model-api"});
    }
    child_.emplace("sg-serve", args);
    std::string why;
    ready_ = child_->WaitReady(inference_, "/ping", std::chrono::seconds(60), &why);
    EXPECT_TRUE(ready_) << why;
  }

  bool ready() const { return ready_; }
  int inference() const { return inference_; }
  int metrics() const { return metrics_; }

  HttpResponse Call(int port, const std::string& method, const std::string& target,
                    const std::string& body = "",
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequestSpec spec;
    spec.method = method;
    spec.target = target;
    spec.body = body;
    spec.headers = std::move(headers);
    spec.timeout = std::chrono::seconds(60);
    std::string error;
    auto r = Http(port, spec, &error);
    EXPECT_TRUE(r) << method << " " << target << ": " << error;
    return r ? *r : HttpResponse{};
  }
  HttpResponse Manage(const std::string& method, const std::string& target) {
    return Call(management_, method, target);
  }
  json Describe(const std::string& target) {
    auto r = Manage("GET", target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
  std::vector<int> Pids(const std::string& model) {
    std::vector<int> out;
    auto d = Describe("/models/" + model);
    if (d.is_array()) {
      for (const auto& w : d[0]["workers"]) out.push_back(w["pid"].get<int>());
    }
    return out;
  }

 private:
  TempDir dir_;
  int inference_ = 0, management_ = 0, metrics_ = 0;
  bool ready_ = false;
  std::optional<ChildProcess> child_;
};

void ExpectHealthy(Serve& serve) {
  auto ping = serve.Call(serve.inference(), "GET", "/ping");
  EXPECT_EQ(ping.status, 200) << ping.body;
}

std::string Status(const HttpResponse& r) {
  auto body = json::parse(r.body, nullptr, false);
  return body.is_object() && body.contains("status") ? body["status"].get<std::string>() : r.body;
}

// Scaling one model starts or stops only that model's workers, and only when the count changes;
// a synchronous scale answers once the new workers are ready, so /ping is Healthy by then.
TEST(ManagementApiTest, ScaleChangesOnlyThatModelOnlyWhenTheCountChanges) {
  Serve serve(json{{"fashion", FashionModel(1)}, {"other", FashionModel(1)}});
  ASSERT_TRUE(serve.ready());
  auto fashion = serve.Pids("fashion");
  auto other = serve.Pids("other");
  ASSERT_EQ(fashion.size(), 1u);
  ASSERT_EQ(other.size(), 1u);

  auto same = serve.Manage("PUT", "/models/fashion?min_worker=1&synchronous=true");
  EXPECT_EQ(same.status, 200) << same.body;
  EXPECT_EQ(Status(same), "Workers scaled to 1 for model: fashion");
  EXPECT_EQ(serve.Pids("fashion"), fashion) << "the same count restarted the workers";

  auto up = serve.Manage("PUT", "/models/fashion/1.0?min_worker=2&synchronous=true");
  EXPECT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(Status(up), "Workers scaled to 2 for model: fashion, version: 1.0");
  ExpectHealthy(serve);
  auto described = serve.Describe("/models/fashion")[0];
  ASSERT_EQ(described["workers"].size(), 2u);
  for (const auto& w : described["workers"]) EXPECT_EQ(w["status"], "READY") << described.dump();
  EXPECT_EQ(serve.Pids("other"), other) << "scaling fashion restarted other's workers";

  // TorchServe's answers to odd parameters (its management collection's cases).
  EXPECT_EQ(serve.Manage("PUT", "/models/fashion?min_worker=2&max_worker=1").status, 400);
  EXPECT_EQ(serve.Manage("PUT", "/models/fashion?min_worker=-1").status, 500);
  EXPECT_EQ(serve.Manage("PUT", "/models/fashion/0.0?min_worker=1&synchronous=true").status, 404);
  EXPECT_EQ(serve.Manage("PUT", "/models/nope?min_worker=1").status, 404);
  // The model API is off here: no registering, no unregistering.
  EXPECT_EQ(serve.Manage("POST", "/models?url=x.mar").status, 405);
  EXPECT_EQ(serve.Manage("DELETE", "/models/fashion").status, 405);
  // Scaled to 0, a model does not make the server unhealthy (TorchServe's /ping).
  auto down = serve.Manage("PUT", "/models/fashion?min_worker=0&synchronous=true");
  EXPECT_EQ(down.status, 200) << down.body;
  EXPECT_EQ(serve.Pids("other"), other);
  ExpectHealthy(serve);
}

// POST /models registers an archive of the model store (synchronously: its workers are ready
// when it answers), GET /models pages through the models, set-default picks the version that
// unversioned requests get, DELETE unregisters.
TEST(ManagementApiTest, RegisterPaginateSetDefaultUnregister) {
  TempDir store;
  using serve::testing::MarEntries;
  using serve::testing::MarModel;
  // scorer_tiny takes TorchServe's default 224x224 RGB input, as an archive's model gets.
  auto mar = [&](const std::string& file, const std::string& name, const std::string& version) {
    ASSERT_TRUE(serve::testing::WriteZip(
        store.path() / file, MarEntries(MarModel(name, version, "model.pt"),
                                        sg::testing::ModelFixture("scorer_tiny.pt"), "", "")));
  };
  mar("a.mar", "alpha", "1.0");
  mar("a2.mar", "alpha", "2.0");
  mar("b.mar", "beta", "1.0");
  Serve serve(nullptr, store.path());
  ASSERT_TRUE(serve.ready());

  EXPECT_EQ(serve.Manage("POST", "/models").status, 400);
  EXPECT_EQ(serve.Manage("POST", "/models?url=nope.mar").status, 404);
  EXPECT_EQ(serve.Manage("POST", "/models?url=a.mar&runtime=python4").status, 400);
  auto registered = serve.Manage("POST", "/models?url=a.mar&initial_workers=1&synchronous=true");
  ASSERT_EQ(registered.status, 200) << registered.body;
  EXPECT_EQ(Status(registered), "Model \"alpha\" Version: 1.0 registered with 1 initial workers");
  ExpectHealthy(serve);
  auto alpha = serve.Describe("/models/alpha")[0];
  EXPECT_EQ(alpha["workers"][0]["status"], "READY");
  EXPECT_EQ(alpha["modelUrl"], "a.mar");
  EXPECT_EQ(alpha["loadedAtStartup"], false);
  EXPECT_EQ(alpha["maxBatchDelay"], 100);  // TorchServe's default: the archive sets none
  EXPECT_EQ(serve.Manage("POST", "/models?url=a.mar").status, 409);
  auto beta = serve.Manage("POST", "/models?url=b.mar&model_name=beta");
  ASSERT_EQ(beta.status, 200) << beta.body;
  EXPECT_EQ(Status(beta),
            "Model \"beta\" Version: 1.0 registered with 0 initial workers. Use scale workers API "
            "to add workers for the model.");
  // A handler sg-serve does not have: registered (as TorchServe does), its workers fail.
  ASSERT_EQ(serve.Manage("POST", "/models?url=b.mar&model_name=gamma&handler=my.py:handle").status,
            200);
  auto refused = serve.Manage("PUT", "/models/gamma?min_worker=1&synchronous=true");
  EXPECT_EQ(refused.status, 500) << refused.body;
  EXPECT_NE(refused.body.find("my.py:handle"), std::string::npos) << refused.body;

  auto page = [&](const std::string& query) {
    return json::parse(serve.Manage("GET", "/models" + query).body);
  };
  EXPECT_EQ(page("?limit=1"), json::parse(R"({"nextPageToken": "1",
                            "models": [{"modelName": "alpha", "modelUrl": "a.mar"}]})"));
  EXPECT_EQ(page("?limit=1&next_page_token=1")["models"][0]["modelName"], "beta");
  EXPECT_EQ(page("?limit=5&next_page_token=1")["models"].size(), 2u);
  EXPECT_FALSE(page("?limit=5&next_page_token=1").contains("nextPageToken"));
  EXPECT_EQ(page("?next_page_token=12")["models"], json::array());
  EXPECT_EQ(page("?limit=-1")["models"].size(), 3u);

  ASSERT_EQ(serve.Manage("POST", "/models?url=a2.mar").status, 200);
  EXPECT_EQ(serve.Describe("/models/alpha/all").size(), 2u);
  EXPECT_EQ(serve.Describe("/models/alpha")[0]["modelVersion"], "1.0");
  auto set = serve.Manage("PUT", "/models/alpha/2.0/set-default");
  EXPECT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(serve.Describe("/models/alpha")[0]["modelVersion"], "2.0");
  EXPECT_EQ(serve.Manage("PUT", "/models/alpha/9.9/set-default").status, 404);
  EXPECT_EQ(serve.Manage("PUT", "/models/nope/1.0/set-default").status, 404);

  auto gone = serve.Manage("DELETE", "/models/beta");
  EXPECT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(Status(gone), "Model \"beta\" unregistered");
  EXPECT_EQ(serve.Manage("GET", "/models/beta").status, 404);
  EXPECT_EQ(serve.Manage("DELETE", "/models/alpha/0.0").status, 404);
  EXPECT_EQ(serve.Manage("DELETE", "/models/alpha/1.0").status, 200);
  EXPECT_EQ(serve.Describe("/models/alpha/all").size(), 1u);
}

// x-request-id echoed or generated; KServe v1 predict; a KServe v2 request without the batch
// dimension; TorchServe's metrics (Requests2XX, hostname, "default" version) and the name[]
// filter; sg-serve's own counters end in _total; the API description.
TEST(ManagementApiTest, RequestIdKServeMetricsAndApiDescription) {
  Serve serve(json{{"fashion", FashionModel(1)},
                   {"vec",
                    {{"path", sg::testing::ModelFixture("tensor_tiny.pt")},
                     {"handler", "tensor"},
                     {"input_shape", {4}},
                     {"workers", 1}}}});
  ASSERT_TRUE(serve.ready());
  auto echoed = serve.Call(serve.inference(), "GET", "/ping", "", {{"x-request-id", "abc-123"}});
  EXPECT_EQ(echoed.Header("x-request-id"), "abc-123");
  auto generated = serve.Call(serve.inference(), "GET", "/ping");
  EXPECT_TRUE(std::regex_match(generated.Header("x-request-id"),
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                          "[0-9a-f]{12}")))
      << generated.Header("x-request-id");

  // KServe v1: each instance answered as /predictions answers it alone.
  auto alone = serve.Call(serve.inference(), "POST", "/predictions/fashion", Png28(1));
  ASSERT_EQ(alone.status, 200) << alone.body;
  json v1_request = {
      {"instances", {{{"data", Base64Encode(Png28(1))}}, {{"data", Base64Encode(Png28(2))}}}}};
  auto v1 = serve.Call(serve.inference(), "POST", "/v1/models/fashion:predict", v1_request.dump());
  ASSERT_EQ(v1.status, 200) << v1.body;
  auto predictions = json::parse(v1.body)["predictions"];
  ASSERT_EQ(predictions.size(), 2u);
  EXPECT_EQ(predictions[0], json::parse(alone.body));
  EXPECT_EQ(serve.Call(serve.inference(), "POST", "/v1/models/nope:predict", "{}").status, 404);
  EXPECT_EQ(
      serve.Call(serve.inference(), "POST", "/v1/models/fashion:predict", R"({"x": 1})").status,
      400);

  // KServe v2: shape [4] for a model of [N, 4] is one sample, answered without a batch dim.
  json v2_request = {
      {"inputs",
       {{{"name", "input-0"}, {"shape", {4}}, {"datatype", "FP32"}, {"data", {1, 2, 3, 4}}}}}};
  auto v2 = serve.Call(serve.inference(), "POST", "/v2/models/vec/infer", v2_request.dump());
  ASSERT_EQ(v2.status, 200) << v2.body;
  auto v2_out = json::parse(v2.body)["outputs"][0];
  EXPECT_EQ(v2_out["shape"], json({3}));
  auto row = serve.Call(serve.inference(), "POST", "/predictions/vec", R"({"data": [1, 2, 3, 4]})");
  auto expected = json::parse(row.body)["data"];
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(v2_out["data"][i].get<double>(), expected[i].get<double>(), 1e-6);
  }

  auto metrics = HttpGet(serve.metrics(), "/metrics");
  ASSERT_TRUE(metrics);
  const auto& text = metrics->body;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      text, m, std::regex("Requests2XX\\{Level=\"Host\",Hostname=\"([^\"]*)\",\\} (\\d+)\\.0\n")))
      << text;
  EXPECT_EQ(m[1], LocalHostname());
  EXPECT_GE(std::stoi(m[2]), 5);
  EXPECT_TRUE(std::regex_search(text, std::regex("Requests4XX\\{[^}]*\\} [1-9]\\d*\\.0\n")))
      << text;
  EXPECT_NE(text.find("ts_inference_requests_total{model_name=\"fashion\",model_version="
                      "\"default\",hostname=\"" +
                      LocalHostname() + "\",} 3.0\n"),
            std::string::npos)
      << text;
  // sg-serve's own counters follow Prometheus' naming: _total.
  std::regex counter("# TYPE (sg_\\S+) counter");
  for (std::sregex_iterator it(text.begin(), text.end(), counter), end; it != end; ++it) {
    std::string name = (*it)[1];
    EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
  }
  auto filtered = HttpGet(serve.metrics(),
                          "/metrics?name[]=ts_inference_requests_total&name[]=sg_workers_ready");
  ASSERT_TRUE(filtered);
  std::set<std::string> families;
  std::regex help("# HELP (\\S+) ");
  for (std::sregex_iterator it(filtered->body.begin(), filtered->body.end(), help), end; it != end;
       ++it) {
    families.insert((*it)[1]);
  }
  EXPECT_EQ(families, (std::set<std::string>{"ts_inference_requests_total", "sg_workers_ready"}))
      << filtered->body;

  for (auto [port, path] :
       {std::pair{serve.inference(), "/predictions/{model_name}"}, std::pair{0, "/models"}}) {
    auto r = port ? serve.Call(port, "OPTIONS", "/") : serve.Manage("OPTIONS", "/");
    ASSERT_EQ(r.status, 200) << r.body;
    auto doc = json::parse(r.body);
    EXPECT_EQ(doc["openapi"], "3.0.1");
    EXPECT_TRUE(doc["paths"].contains(path)) << path;
  }
  auto description = serve.Call(serve.inference(), "GET", "/api-description");
  EXPECT_EQ(description.status, 200);
}

}  // namespace
}  // namespace sg::serve
