// sg-serve started the TorchServe way, end to end: a real .mar (libzip, around a TorchScript
// resnet18 exported by torchserve_reference.py with Debian's python3-torch) in a model store,
// config.properties with TorchServe's http:// addresses, TorchServe's kitten.jpg. The archive's
// answer equals the same model's served from sg-serve's JSON config, byte for byte, and
// TorchServe's image_classifier pipeline run in Python (PIL and torchvision, within 1e-6);
// refused archives and flags exit 2 with the reason.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_archives.h"

namespace sg::serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sg::testing::ChildProcess;
using sg::testing::FreePort;
using sg::testing::Http;
using sg::testing::HttpRequestSpec;
using sg::testing::ReadFile;
using sg::testing::TempDir;

// TorchServe's kitten.jpg and index_to_name.json (tests/fixtures/torchserve/README.md).
fs::path Peer(const std::string& name) {
  return sg::testing::SourceDir() / "tests/fixtures/torchserve" / name;
}

// The exported model and TorchServe's answer, made once for the suite.
struct Reference {
  std::string skip;  // why there is none
  fs::path dir;
  fs::path model;
  json answer;  // [[label, probability], ...] in rank order
};

const Reference& GetReference() {
  static TempDir dir;
  static const Reference reference = [] {
    Reference r;
    r.dir = dir.path();
    if (access("/usr/bin/python3", X_OK) != 0) {
      r.skip = "no /usr/bin/python3 (apt-get install python3-torch python3-torchvision)";
      return r;
    }
    auto script =
        sg::testing::SourceDir() / "tests/integration/model_server/torchserve_reference.py";
    auto result = sg::testing::RunToCompletion(
        {"/usr/bin/python3", script.string(), r.dir.string(), Peer("kitten.jpg").string(),
         Peer("index_to_name.json").string()},
        r.dir, std::chrono::seconds(240));
    EXPECT_EQ(result.exit_code, 0) << result.err;
    r.model = r.dir / "resnet18.pt";
    r.answer = json::parse(ReadFile(r.dir / "reference.json"), nullptr, false);
    return r;
  }();
  return reference;
}

// One sg-serve child with its inference and management ports, ready when /ping is Healthy.
class Serve {
 public:
  Serve(std::vector<std::string> args, int inference, int management)
      : inference_(inference), management_(management) {
    child_.emplace("sg-serve", std::move(args));
    std::string why;
    ready_ = child_->WaitReady(inference_, "/ping", std::chrono::seconds(120), &why);
    EXPECT_TRUE(ready_) << why;
  }
  bool ready() const { return ready_; }
  ChildProcess& child() { return *child_; }

  // POST /predictions/NAME with `body`; the response body ("" when it failed).
  std::string Predict(const std::string& name, const std::string& body) {
    HttpRequestSpec spec;
    spec.method = "POST";
    spec.target = "/predictions/" + name;
    spec.body = body;
    spec.timeout = std::chrono::seconds(60);
    std::string error;
    auto r = Http(inference_, spec, &error);
    EXPECT_TRUE(r && r->status == 200) << error << (r ? r->body : "");
    return r && r->status == 200 ? r->body : "";
  }
  json Describe(const std::string& name) {
    auto r = sg::testing::HttpGet(management_, "/models/" + name);
    EXPECT_TRUE(r && r->status == 200);
    return r ? json::parse(r->body, nullptr, false) : json();
  }

 private:
  int inference_, management_;
  bool ready_ = false;
  std::optional<ChildProcess> child_;
};

#define REQUIRE_REFERENCE()                                            \
  const Reference& ref = GetReference();                               \
  if (!ref.skip.empty()) GTEST_SKIP() << "no reference: " << ref.skip; \
  ASSERT_TRUE(ref.answer.is_array() && ref.answer.size() == 5) << ref.answer

TEST(TorchServeStartTest, ArchiveAnswersAsTheJsonConfigAndAsTorchServe) {
  REQUIRE_REFERENCE();
  TempDir dir;
  fs::path store = dir.path() / "store";
  fs::create_directories(store);
  ASSERT_TRUE(serve::testing::WriteZip(
      store / "resnet-18.mar",
      serve::testing::MarEntries(serve::testing::MarModel("resnet18", "1.0", "resnet18.pt"),
                                 ref.model, Peer("index_to_name.json"),
                                 "minWorkers: 1\nbatchSize: 1\n")));
  const std::string kitten = ReadFile(Peer("kitten.jpg"));

  // The same model from sg-serve's own JSON config.
  std::string from_json;
  {
    int inference = FreePort(), management = FreePort();
    json config = {{"inference_address", "127.0.0.1:" + std::to_string(inference)},
                   {"management_address", "127.0.0.1:" + std::to_string(management)},
                   {"metrics_address", "127.0.0.1:" + std::to_string(FreePort())},
                   {"models",
                    {{"resnet18",
                      {{"path", ref.model.string()},
                       {"labels", Peer("index_to_name.json").string()},
                       {"workers", 1}}}}}};
    auto file = dir.Write("serve.json", config.dump());
    Serve server({"--config", file.string()}, inference, management);
    ASSERT_TRUE(server.ready());
    from_json = server.Predict("resnet18", kitten);
  }

  // The archive, from config.properties as TorchServe reads it.
  int inference = FreePort(), management = FreePort();
  auto properties = dir.Write("config.properties",
                              "# TorchServe's addresses\n"
                              "inference_address=http://127.0.0.1:" +
                                  std::to_string(inference) +
                                  "\n"
                                  "management_address=http://127.0.0.1:" +
                                  std::to_string(management) +
                                  "\n"
                                  "metrics_address=http://127.0.0.1:" +
                                  std::to_string(FreePort()) +
                                  "\n"
                                  "model_store=" +
                                  store.string() +
                                  "\n"
                                  "load_models=resnet-18.mar\n"
                                  "number_of_netty_threads=4\n");
  Serve server({"--start", "--ncs", "--ts-config", properties.string()}, inference, management);
  ASSERT_TRUE(server.ready());
  std::string from_archive = server.Predict("resnet18", kitten);
  ASSERT_FALSE(from_archive.empty());
  EXPECT_EQ(from_archive, from_json);

  // TorchServe's answer: the same labels in the same order, the same probabilities.
  json answer = json::parse(from_archive, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << from_archive;
  ASSERT_EQ(answer.size(), 5u) << from_archive;
  for (const auto& row : ref.answer) {
    std::string label = row[0];
    ASSERT_TRUE(answer.contains(label)) << label << " missing from " << from_archive;
    EXPECT_NEAR(answer[label].get<double>(), row[1].get<double>(), 1e-6) << label;
  }
  auto described = server.Describe("resnet18");
  ASSERT_TRUE(described.is_array() && !described.empty()) << described;
  EXPECT_EQ(described[0]["modelVersion"], "1.0");
  EXPECT_NE(server.child().Log().find("number_of_netty_threads: ignored"), std::string::npos)
      << server.child().Log();
}

// As torchserve --start --model-store DIR --enable-model-api: no model yet, healthy, none listed.
TEST(TorchServeStartTest, StartsWithoutModelsWhenTheyCanBeRegistered) {
  TempDir dir;
  fs::create_directories(dir.path() / "store");
  int inference = FreePort(), management = FreePort();
  Serve server({"--model-store", (dir.path() / "store").string(), "--enable-model-api",
                "--inference-address", "http://127.0.0.1:" + std::to_string(inference),
                "--management-address", "http://127.0.0.1:" + std::to_string(management),
                "--metrics-address", "127.0.0.1:" + std::to_string(FreePort())},
               inference, management);
  ASSERT_TRUE(server.ready());
  auto models = sg::testing::HttpGet(management, "/models");
  ASSERT_TRUE(models && models->status == 200);
  EXPECT_EQ(json::parse(models->body)["models"], json::array()) << models->body;
}

TEST(TorchServeStartTest, RefusalsExitTwoWithTheReason) {
  TempDir dir;
  fs::path store = dir.path() / "store";
  fs::create_directories(store);
  auto fixture = sg::testing::SourceDir() / "tests/fixtures/models/fashion_tiny.pt";
  auto model = serve::testing::MarModel("fashion", "1.0", "model.pt");
  model["modelFile"] = "model.py";
  ASSERT_TRUE(serve::testing::WriteZip(store / "eager.mar",
                                       serve::testing::MarEntries(model, fixture, "", "")));
  model.erase("modelFile");
  model["handler"] = "custom_handler.py";
  ASSERT_TRUE(serve::testing::WriteZip(store / "custom.mar",
                                       serve::testing::MarEntries(model, fixture, "", "")));
  auto https = dir.Write("https.properties", "inference_address=https://127.0.0.1:8443\n");

  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  std::vector<Case> cases = {
      {{"--model-store", store.string(), "--models", "eager.mar"},
       "$.model.modelFile: \"model.py\" is an eager model"},
      {{"--model-store", store.string(), "--models", "c=custom.mar"},
       "\"custom_handler.py\" is a custom Python handler"},
      {{"--ts-config", https.string(), "--model-store", store.string(), "--models", "all"},
       https.string() + ":1: inference_address: https is not served"},
      {{"--stop"}, "--stop: sg-serve runs in the foreground"},
      {{"--workflow-store", store.string()}, "--workflow-store: TorchServe workflows"},
      {{"--config", https.string(), "--models", "eager.mar"},
       "--config and --model do not go with TorchServe's"},
  };
  for (const auto& c : cases) {
    auto result = sg::testing::RunTool("sg-serve", c.args, dir.path());
    EXPECT_EQ(result.exit_code, 2) << c.expected << "\n" << result.err;
    EXPECT_NE(result.err.find(c.expected), std::string::npos) << result.err;
  }
}

}  // namespace
}  // namespace sg::serve
