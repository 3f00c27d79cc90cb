// `sg-serve tune` end to end: the real binary tunes the Fashion-MNIST student over real HTTP
// with a tiny budget; its result file, its table and its config file (which must start
// sg-serve), and SIGINT keeping what was measured.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/subprocess.h"
#include "model_server/cpu_budget.h"
#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_images.h"

namespace sg::testing {
namespace {

using namespace std::chrono_literals;

class TuneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = SourceDir() / "models/fashion-mnist/student.pt";
    ASSERT_TRUE(std::filesystem::exists(model_)) << model_;
    config_ =
        dir_.Write("student.json", R"({"models": {"fashion": {"path": ")" + model_.string() + R"(",
      "handler": "image_classifier", "preprocess": {"resize": 28, "crop": 28, "channels": 1,
      "mean": [0.286], "std": [0.353]}}}})");
    // A corpus of 24 real 28x28 grayscale PNGs (seeded noise).
    std::filesystem::create_directory(dir_.path() / "corpus");
    std::mt19937 random(7);
    for (int i = 0; i < 24; ++i) {
      std::vector<uint8_t> pixels(28 * 28);
      for (auto& p : pixels) p = static_cast<uint8_t>(random() % 256);
      dir_.Write("corpus/" + std::to_string(100 + i) + ".png",
                 serve::testing::EncodePng(pixels, 28, 28, 1));
    }
    out_ = dir_.path() / "out";
  }

  // sg-serve tune over the corpus; the space is the pinned layouts and the naive reference.
  std::vector<std::string> TuneArgs(const std::string& budget) const {
    return {"tune",
            "--config",
            config_.string(),
            "--corpus",
            (dir_.path() / "corpus").string(),
            "--slo-p99-ms",
            "5000",
            "--budget",
            budget,
            "--warmup",
            "0.3",
            "--min-measure",
            "0.5",
            "--pinning",
            "on",
            "--front",
            "off",
            "--batch-sizes",
            "1",
            "--optimize",
            "on",
            "--precisions",
            "fp32",
            "--users",
            "2",
            "--out",
            out_.string()};
  }

  static nlohmann::json ReadJson(const std::filesystem::path& path) {
    auto doc = nlohmann::json::parse(ReadFile(path), nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << path;
    return doc;
  }

  TempDir dir_;
  std::filesystem::path model_, config_, out_;
};

TEST_F(TuneTest, WritesTheWinnerAsAResultAndAConfigThatServes) {
  // Every configuration measured once (--exhaustive): what this test checks is the result and
  // the config written, and a time budget would measure fewer configurations on a loaded
  // machine (a 12 s budget measured only one in a coverage build at load 9).
  auto args = TuneArgs("12s");
  args.insert(args.end(), {"--exhaustive", "--measure-seconds", "0.5"});
  ChildProcess tune("sg-serve", args);
  ASSERT_TRUE(tune.started());
  auto status = tune.process().WaitFor(90s);
  ASSERT_TRUE(status) << "tune did not finish: " << tune.Log();
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << tune.Log();

  // The table, in Locust's columns plus p99, one row per configuration.
  std::string log = tune.Log();
  EXPECT_NE(log.find("| # reqs | # fails | Avg | Min | Max | Med | req/s | p99 |"),
            std::string::npos)
      << log;
  auto result = ReadJson(out_ / "result.json");
  ASSERT_TRUE(result.is_object());
  EXPECT_EQ(
      result["pod"]["cpus"].get<int>(),
      static_cast<int>(serve::DiscoverCpuBudget("", serve::CurrentAffinity()).allowed.size()));
  EXPECT_EQ(result["slo_p99_ms"].get<double>(), 5000);
  double rps = result["throughput_rps_at_slo"].get<double>();
  EXPECT_GT(rps, 0);
  EXPECT_FALSE(result["interrupted"].get<bool>());
  // The throughput is the winner's measured one; every configuration listed was measured.
  const auto& configurations = result["configurations"];
  ASSERT_GE(configurations.size(), 2u);
  bool found = false;
  for (const auto& c : configurations) {
    EXPECT_GT(c["requests"].get<uint64_t>(), 0u) << c.dump();
    EXPECT_NE(log.find("| " + c["label"].get<std::string>() + " |"), std::string::npos)
        << c["label"];
    if (c["label"] == result["winner"]["label"]) {
      found = true;
      EXPECT_DOUBLE_EQ(c["rps"].get<double>(), rps);
      EXPECT_LE(c["p99_ms"].get<double>(), 5000);
    }
  }
  EXPECT_TRUE(found) << result.dump(2);
  // The naive configuration (a worker per CPU, a thread per CPU, unpinned) is a reference.
  EXPECT_FALSE(result["ratio_to_naive"].is_null()) << result.dump(2);
  EXPECT_FALSE(ReadFile(out_ / "chart.svg").empty());

  // serve.json is the winner's configuration and starts sg-serve as it is.
  auto served = ReadJson(out_ / "serve.json");
  EXPECT_EQ(served["cpu"]["workers"], result["winner"]["workers"]);
  EXPECT_EQ(served["cpu"]["threads_per_worker"], result["winner"]["threads_per_worker"]);
  EXPECT_EQ(served["cpu"]["pinning"], result["winner"]["pinning"]);
  int port = FreePort();
  ChildProcess serve("sg-serve", {"--config", (out_ / "serve.json").string(), "--inference-address",
                                  "127.0.0.1:" + std::to_string(port), "--management-address",
                                  "127.0.0.1:" + std::to_string(FreePort()), "--metrics-address",
                                  "127.0.0.1:" + std::to_string(FreePort())});
  std::string why;
  ASSERT_TRUE(serve.WaitReady(port, "/ping", 60s, &why)) << why;
  HttpRequestSpec predict;
  predict.method = "POST";
  predict.target = "/predictions/fashion";
  predict.headers = {{"Content-Type", "image/png"}};
  predict.body = ReadFile(dir_.path() / "corpus/100.png");
  auto response = Http(port, predict);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200) << response->body;
}

TEST_F(TuneTest, SigintKeepsAndPrintsWhatWasMeasured) {
  ChildProcess tune("sg-serve", TuneArgs("5m"));
  ASSERT_TRUE(tune.started());
  // Wait for the first finished measurement (its progress line), then interrupt.
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (tune.Log().find(" req/s, p99 ") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << tune.Log();
    ASSERT_TRUE(tune.process().Running()) << tune.Log();
    std::this_thread::sleep_for(50ms);
  }
  tune.process().Signal(SIGINT);
  auto status = tune.process().WaitFor(40s);
  ASSERT_TRUE(status) << "tune did not stop: " << tune.Log();
  ASSERT_TRUE(WIFEXITED(*status)) << tune.Log();
  EXPECT_EQ(WEXITSTATUS(*status), 130) << tune.Log();
  auto result = ReadJson(out_ / "result.json");
  ASSERT_TRUE(result.is_object());
  EXPECT_TRUE(result["interrupted"].get<bool>());
  ASSERT_GE(result["configurations"].size(), 1u);
  EXPECT_LT(result["configurations"].size(), 4u);  // not all of the space: it stopped early
  EXPECT_NE(tune.Log().find("interrupted: what was measured"), std::string::npos) << tune.Log();
  for (const auto& c : result["configurations"]) {
    EXPECT_GT(c["requests"].get<uint64_t>(), 0u) << c.dump();
  }
}

}  // namespace
}  // namespace sg::testing
