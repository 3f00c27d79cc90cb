// `device: cuda`: what a CPU-only libtorch does with it (sg-serve refuses it at start-up, with
// the reason), what a CUDA libtorch does (the GPU's answers match the CPU's; these tests skip
// themselves without one), and doctor's "gpu" finding over plain data.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "model_server/doctor.h"
#include "model_server/model_runner.h"
#include "model_server/worker_core.h"
#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_images.h"

namespace sg::serve {
namespace {

nlohmann::json FashionModelJson(const std::string& device) {
  return {{"path", sg::testing::ModelFixture("fashion_tiny.pt")},
          {"labels", sg::testing::ModelFixture("fashion_index_to_name.json")},
          {"handler", "image_classifier"},
          {"preprocess",
           {{"resize", 28}, {"crop", 28}, {"channels", 1}, {"mean", {0.286}}, {"std", {0.353}}}},
          {"workers", 1},
          {"device", device}};
}

bool UsableCuda() {
  GpuInfo gpu = ProbeGpus();
  return gpu.torch_has_cuda && gpu.device_count > 0;
}

TEST(CudaStartupTest, CpuOnlyLibtorchRefusesCudaAtStartUpWithTheReason) {
  if (ProbeGpus().torch_has_cuda) GTEST_SKIP() << "this libtorch has CUDA";
  sg::testing::TempDir dir;
  nlohmann::json config = {
      {"inference_address", "127.0.0.1:" + std::to_string(sg::testing::FreePort())},
      {"management_address", "127.0.0.1:" + std::to_string(sg::testing::FreePort())},
      {"metrics_address", "127.0.0.1:" + std::to_string(sg::testing::FreePort())},
      {"cpu", {{"workers", 1}, {"threads_per_worker", 1}}},
      {"models", {{"fashion", FashionModelJson("cuda")}}}};
  auto path = dir.Write("serve.json", config.dump());
  sg::testing::ChildProcess serve("sg-serve", {"--config", path.string()});
  ASSERT_TRUE(serve.started());
  auto status = serve.process().WaitFor(std::chrono::seconds(60));
  ASSERT_TRUE(status) << "sg-serve still running with device cuda:\n" << serve.Log();
  ASSERT_TRUE(WIFEXITED(*status)) << serve.Log();
  EXPECT_EQ(WEXITSTATUS(*status), 1) << serve.Log();
  EXPECT_NE(serve.Log().find("cannot start: model \"fashion\": device cuda requested but this "
                             "libtorch was built without CUDA"),
            std::string::npos)
      << serve.Log();
}

TEST(CudaRunnerTest, GpuAnswersMatchTheCpuOnes) {
  if (!UsableCuda()) GTEST_SKIP() << "no CUDA libtorch with a device here";
  ConfigureTorchThreads(1, 1);
  auto config = [](const std::string& device) {
    ModelConfig m;
    m.name = "fashion";
    m.path = sg::testing::ModelFixture("fashion_tiny.pt");
    m.labels_path = sg::testing::ModelFixture("fashion_index_to_name.json");
    m.batch_size = 4;
    m.preprocess.resize = 28;
    m.preprocess.crop = 28;
    m.preprocess.channels = 1;
    m.preprocess.mean = {0.286f};
    m.preprocess.std = {0.353f};
    m.topk = 10;
    m.device = device;
    return m;
  };
  ModelConfig cpu = config("cpu"), gpu = config("cuda");
  std::string error;
  auto cpu_runner = LoadTorchScriptModel(cpu, &error);
  ASSERT_TRUE(cpu_runner) << error;
  auto gpu_runner = LoadTorchScriptModel(gpu, &error);
  ASSERT_TRUE(gpu_runner) << error;
  Labels labels;
  ASSERT_TRUE(LoadLabels(cpu.labels_path, &labels, &error)) << error;
  std::vector<std::string> images;
  for (int i = 0; i < 4; ++i) {
    images.push_back(
        serve::testing::EncodePng(serve::testing::GradientPixels(28, 28, 1, i), 28, 28, 1));
  }
  for (size_t n : {size_t{1}, size_t{4}}) {
    std::vector<std::string_view> batch(images.begin(), images.begin() + n);
    auto a = HandleBatch(*cpu_runner, cpu, labels, batch);
    auto b = HandleBatch(*gpu_runner, gpu, labels, batch);
    ASSERT_EQ(a.size(), n);
    ASSERT_EQ(b.size(), n);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(a[i].status, 200) << a[i].body;
      ASSERT_EQ(b[i].status, 200) << b[i].body;
      auto pa = nlohmann::json::parse(a[i].body), pb = nlohmann::json::parse(b[i].body);
      ASSERT_EQ(pa.size(), pb.size());
      // fp32 on both; TF32 and kernel choice differ, so probabilities agree closely, not bitwise.
      for (auto& [label, p] : pa.items()) {
        ASSERT_TRUE(pb.contains(label)) << label;
        EXPECT_NEAR(p.get<double>(), pb[label].get<double>(), 1e-3) << label;
      }
    }
  }
}

TEST(CudaRunnerTest, Bf16IsRefusedOnCuda) {
  ModelConfig m;
  m.name = "fashion";
  m.path = sg::testing::ModelFixture("fashion_tiny.pt");
  m.device = "cuda";
  m.precision = "bf16";
  std::string error;
  EXPECT_FALSE(LoadTorchScriptModel(m, &error));
  if (UsableCuda()) {
    EXPECT_EQ(error, "model \"fashion\": precision bf16 is CPU autocast; use fp32 with cuda");
  } else {
    EXPECT_NE(error.find("device cuda requested but"), std::string::npos) << error;
  }
}

TEST(GpuProbeTest, ProbeAgreesWithTheLibtorchBuild) {
  GpuInfo gpu = ProbeGpus();
  if (!gpu.torch_has_cuda) {
    EXPECT_EQ(gpu.device_count, 0);
  }
}

TEST(GpuDoctorTest, ParsesNvidiaSmiCsv) {
  auto devices = ParseNvidiaSmiCsv(
      "0, NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15\n"
      "1, NVIDIA H200, 143771 MiB, 550.54.15\r\n"
      "garbage line\n"
      "x, name, 1 MiB, 1\n"
      "\n");
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].index, 0);
  EXPECT_EQ(devices[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(devices[0].memory, "81559 MiB");
  EXPECT_EQ(devices[0].driver_version, "550.54.15");
  EXPECT_EQ(devices[1].index, 1);
  EXPECT_EQ(devices[1].name, "NVIDIA H200");
  EXPECT_EQ(devices[1].driver_version, "550.54.15");
}

TEST(GpuDoctorTest, ReportsWhatDeviceCudaWillDo) {
  GpuInfo gpu;
  Finding f = DiagnoseGpu(gpu);
  EXPECT_EQ(f.topic, "gpu");
  EXPECT_EQ(f.level, Finding::Level::kOk);
  EXPECT_NE(f.message.find("device cuda is refused"), std::string::npos) << f.message;

  GpuDevice h100{0, "NVIDIA H100 80GB HBM3", "81559 MiB", "550.54.15"};
  gpu.nvidia_smi = {h100};
  f = DiagnoseGpu(gpu);
  EXPECT_EQ(f.level, Finding::Level::kWarn);
  EXPECT_EQ(f.message,
            "1 GPU(s) here (0: NVIDIA H100 80GB HBM3 (81559 MiB), driver 550.54.15) but this "
            "libtorch is CPU-only: device cuda is refused; build against a CUDA libtorch "
            "(-DSG_TORCH_FROM_PYTHON=ON)");

  gpu.torch_has_cuda = true;
  gpu.device_count = 0;
  f = DiagnoseGpu(gpu);
  EXPECT_EQ(f.level, Finding::Level::kWarn);

  gpu.device_count = 1;
  f = DiagnoseGpu(gpu);
  EXPECT_EQ(f.level, Finding::Level::kOk);
  EXPECT_EQ(f.message,
            "1 CUDA device(s) for libtorch: 0: NVIDIA H100 80GB HBM3 (81559 MiB), driver "
            "550.54.15");
  EXPECT_EQ(FormatFindings({f}),
            "ok    gpu: 1 CUDA device(s) for libtorch: 0: NVIDIA H100 80GB HBM3 (81559 MiB), "
            "driver 550.54.15\n");
}

}  // namespace
}  // namespace sg::serve
