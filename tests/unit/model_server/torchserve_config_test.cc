// sg-serve started the TorchServe way (torchserve_config.h): config.properties, the flags and the
// environment, over a model store of real archives around the real TorchScript fixtures.
#include "model_server/torchserve_config.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "common/config.h"
#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_archives.h"

namespace sg::serve {
namespace {

namespace fs = std::filesystem;
using serve::testing::MarEntries;
using serve::testing::MarModel;
using sg::testing::TempDir;

// Every line of `expected` is found in `all`.
void ExpectLines(const std::string& all, const std::vector<std::string>& expected) {
  for (const auto& e : expected) {
    EXPECT_NE(all.find(e), std::string::npos) << e << "\nin:\n" << all;
  }
}

class TorchServeConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(store_); }

  // Writes NAME.mar into the model store.
  void Archive(const std::string& file, const std::string& name, const std::string& version,
               const std::string& yaml = "") {
    ASSERT_TRUE(serve::testing::WriteZip(
        store_ / file, MarEntries(MarModel(name, version, "model.pt"),
                                  sg::testing::ModelFixture("fashion_tiny.pt"),
                                  sg::testing::ModelFixture("fashion_index_to_name.json"), yaml)));
  }
  fs::path Properties(const std::string& text) { return dir_.Write("config.properties", text); }

  TorchServeStart Load(const TorchServeFlags& flags,
                       const std::map<std::string, std::string>& env = {}) {
    return LoadTorchServeStart(flags, env, (dir_.path() / "cwd.properties").string(),
                               (dir_.path() / "work").string());
  }
  // The problems LoadTorchServeStart throws, one per line.
  std::string Problems(const TorchServeFlags& flags,
                       const std::map<std::string, std::string>& env = {}) {
    try {
      Load(flags, env);
    } catch (const ConfigError& e) {
      std::string all;
      for (const auto& p : e.problems()) all += p + "\n";
      return all;
    }
    ADD_FAILURE() << "no error";
    return "";
  }

  TempDir dir_;
  fs::path store_ = dir_.path() / "store";
};

TEST_F(TorchServeConfigTest, PropertiesFileLoadsTheModelStore) {
  Archive("fashion.mar", "fashion", "1.0", "minWorkers: 2\nbatchSize: 4\n");
  Archive("shoes.mar", "shoes", "3.1");
  auto file = Properties(
      "inference_address=http://127.0.0.1:18080\n"
      "management_address=http://0.0.0.0:18081/\n"
      "metrics_address: 127.0.0.1:18082\n"
      "model_store=" +
      store_.string() +
      "\n"
      "load_models=fashion.mar, boots=shoes.mar\n"
      "default_workers_per_model=3\n"
      "job_queue_size=40\n"
      "default_response_timeout=9\n"
      "default_startup_timeout=30\n"
      "max_request_size=1000\n"
      "enable_model_api=true\n");
  TorchServeFlags flags;
  flags.ts_config = file.string();
  auto start = Load(flags);
  const auto& c = start.config;
  EXPECT_EQ(start.properties_file, file.string());
  EXPECT_EQ(c.inference_address, "127.0.0.1:18080");
  EXPECT_EQ(c.management_address, "0.0.0.0:18081");
  EXPECT_EQ(c.metrics_address, "127.0.0.1:18082");
  EXPECT_EQ(c.model_store, store_.string());
  EXPECT_EQ(c.max_request_size, 1000u);
  EXPECT_TRUE(c.enable_model_api);
  EXPECT_EQ(start.startup_timeout, std::chrono::seconds(30));
  ASSERT_EQ(c.models.size(), 2u);
  const auto& fashion = c.models[0];
  EXPECT_EQ(fashion.name, "fashion");
  EXPECT_EQ(fashion.version, "1.0");
  EXPECT_EQ(fashion.workers, 2);  // model-config.yaml over default_workers_per_model
  EXPECT_EQ(fashion.batch_size, 4);
  EXPECT_EQ(fashion.max_batch_delay, std::chrono::milliseconds(100));  // TorchServe's default
  EXPECT_EQ(fashion.job_queue_size, 40);
  EXPECT_EQ(fashion.response_timeout, std::chrono::seconds(9));
  const auto& boots = c.models[1];
  EXPECT_EQ(boots.name, "boots");  // the name given in load_models over the manifest's
  EXPECT_EQ(boots.version, "3.1");
  EXPECT_EQ(boots.workers, 3);
  EXPECT_EQ(boots.batch_size, 1);
  // A model registered later (POST /models) starts from the same defaults.
  EXPECT_EQ(c.registration_defaults.job_queue_size, 40);
  EXPECT_EQ(c.registration_defaults.response_timeout, std::chrono::seconds(9));
  EXPECT_EQ(c.registration_defaults.max_batch_delay, std::chrono::milliseconds(100));
  EXPECT_TRUE(start.warnings.empty()) << start.warnings[0];
}

TEST_F(TorchServeConfigTest, FlagsOverridePropertiesAndAllLoadsTheWholeStore) {
  Archive("b.mar", "bravo", "1.0");
  Archive("a.mar", "alpha", "1.0");
  fs::create_directories(store_ / ".hidden");
  dir_.Write("store/notes.txt", "not an archive");
  auto file = Properties("model_store=/nonexistent\nload_models=standalone\n");
  TorchServeFlags flags;
  flags.ts_config = file.string();
  flags.model_store = store_.string();
  flags.models = {"all"};
  flags.enable_model_api = true;
  auto start = Load(flags);
  ASSERT_EQ(start.config.models.size(), 2u);
  EXPECT_EQ(start.config.models[0].name, "alpha");  // a.mar, b.mar: in file order
  EXPECT_EQ(start.config.models[1].name, "bravo");
  EXPECT_EQ(start.config.model_store, store_.string());
  EXPECT_TRUE(start.config.enable_model_api);
  EXPECT_EQ(start.config.inference_address, "127.0.0.1:8080");  // TorchServe's default
}

TEST_F(TorchServeConfigTest, ModelsPropertyAppliesWhereTheArchiveIsSilent) {
  Archive("fashion.mar", "fashion", "2.0", "batchSize: 8\n");
  auto file = Properties(
      "models={\\\n"
      "  \"fashion\": {\"2.0\": {\"marName\": \"fashion.mar\", \"minWorkers\": 2, \\\n"
      "     \"batchSize\": 2, \"maxBatchDelay\": 30, \"responseTimeout\": 5, \"foo\": 1}},\\\n"
      "  \"fashion_old\": {\"1.0\": {\"minWorkers\": 7}}\\\n"
      "}\n");
  TorchServeFlags flags;
  flags.ts_config = file.string();
  flags.model_store = store_.string();
  flags.models = {"fashion.mar"};
  auto start = Load(flags);
  ASSERT_EQ(start.config.models.size(), 1u);
  const auto& m = start.config.models[0];
  EXPECT_EQ(m.batch_size, 8);  // the archive's model-config.yaml wins, as in TorchServe
  EXPECT_EQ(m.workers, 2);
  EXPECT_EQ(m.max_batch_delay, std::chrono::milliseconds(30));
  EXPECT_EQ(m.response_timeout, std::chrono::seconds(5));
  ASSERT_EQ(start.warnings.size(), 1u);
  EXPECT_EQ(start.warnings[0], file.string() +
                                   ":1: models.fashion.2.0.foo: ignored: not used by "
                                   "sg-serve's built-in handlers");
}

TEST_F(TorchServeConfigTest, IgnoredAndUnknownKeysAreWarnedAbout) {
  Archive("fashion.mar", "fashion", "1.0");
  auto file = Properties(
      "number_of_netty_threads=4\n"
      "vmargs=-Xmx1g\n"
      "infrence_address=http://127.0.0.1:9\n"
      "disable_token_authorization=false\n");
  TorchServeFlags flags;
  flags.ts_config = file.string();
  flags.model_store = store_.string();
  flags.models = {"fashion.mar"};
  auto start = Load(flags);
  std::string all;
  for (const auto& w : start.warnings) all += w + "\n";
  EXPECT_EQ(start.warnings.size(), 4u) << all;
  const std::string f = file.string();
  ExpectLines(
      all, {f + ":1: number_of_netty_threads: ignored: sg-serve sizes its I/O threads",
            f + ":2: vmargs: ignored: no JVM here",
            f + ":3: infrence_address: unknown key, ignored (as TorchServe ignores unknown keys)",
            f + ":4: disable_token_authorization: false, but sg-serve has no token "
                "authorization"});
}

TEST_F(TorchServeConfigTest, RefusalsNameTheFileLineKeyAndReason) {
  Archive("fashion.mar", "fashion", "1.0");
  auto file = Properties(
      "inference_address=https://127.0.0.1:8443\n"
      "job_queue_size=many\n"
      "enable_model_api=yes\n"
      "load_models=fashion.mar,https://example.com/r.mar,missing.mar\n");
  TorchServeFlags flags;
  flags.ts_config = file.string();
  flags.model_store = store_.string();
  auto all = Problems(flags);
  const std::string f = file.string();
  ExpectLines(
      all,
      {f + ":1: inference_address: https is not served: sg-serve speaks plain HTTP",
       f + ":2: job_queue_size: must be an integer, got \"many\"",
       f + ":3: enable_model_api: must be true or false, got \"yes\"",
       f + ":4: load_models: \"https://example.com/r.mar\": archives are not downloaded",
       f + ":4: load_models: " + (store_ / "missing.mar").string() + ": no such model archive"});
}

TEST_F(TorchServeConfigTest, ArchiveRefusalsAndModelNamesStopTheStart) {
  Archive("fashion.mar", "fashion", "1.0", "batchSize: [\n");
  Archive("twin.mar", "fashion", "1.0");
  TorchServeFlags flags;
  flags.model_store = store_.string();
  flags.models = {"fashion.mar", "twin.mar", "9lives=twin.mar", "=twin.mar"};
  auto all = Problems(flags);
  EXPECT_NE(all.find("--models: load_models: " + (store_ / "fashion.mar").string() +
                     ": model-config.yaml: line "),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("model name \"9lives\" must begin with a letter"), std::string::npos) << all;
  EXPECT_NE(all.find("\"=twin.mar\": expected NAME=FILE.mar or FILE.mar"), std::string::npos)
      << all;

  flags.models = {"fashion_a=twin.mar", "fashion_a=twin.mar"};
  all = Problems(flags);
  EXPECT_NE(all.find("a second model named \"fashion_a\""), std::string::npos) << all;
}

TEST_F(TorchServeConfigTest, NothingToServeIsAnErrorUnlessModelsCanBeRegistered) {
  TorchServeFlags flags;
  flags.model_store = store_.string();
  EXPECT_NE(Problems(flags).find("no model to serve"), std::string::npos);
  flags.enable_model_api = true;
  EXPECT_TRUE(Load(flags).config.models.empty());
  flags.enable_model_api = false;
  flags.model_store.clear();
  flags.models = {"fashion.mar"};
  EXPECT_NE(Problems(flags).find("--models: load_models: \"fashion.mar\" is relative, and no "
                                 "model store is set"),
            std::string::npos);
}

TEST_F(TorchServeConfigTest, EnvironmentAsTorchServeReadsIt) {
  Archive("fashion.mar", "fashion", "1.0");
  auto named = Properties("model_store=" + store_.string() + "\nload_models=fashion.mar\n");
  auto other = dir_.Write("other.properties", "model_store=" + store_.string() +
                                                  "\nload_models=fashion.mar\n"
                                                  "enable_envvars_config=true\n");
  TorchServeFlags flags;
  flags.ts_config = named.string();
  // TS_CONFIG_FILE wins over --ts-config; TS_<KEY> only with enable_envvars_config=true.
  std::map<std::string, std::string> env = {{"TS_CONFIG_FILE", other.string()},
                                            {"TS_INFERENCE_ADDRESS", "http://127.0.0.1:18088"}};
  auto start = Load(flags, env);
  EXPECT_EQ(start.properties_file, other.string());
  EXPECT_EQ(start.config.inference_address, "127.0.0.1:18088");
  env.erase("TS_CONFIG_FILE");
  start = Load(flags, env);
  EXPECT_EQ(start.properties_file, named.string());
  EXPECT_EQ(start.config.inference_address, "127.0.0.1:8080");
  // ./config.properties is read when no file is named.
  dir_.Write("cwd.properties", "inference_address=127.0.0.1:18089\n");
  TorchServeFlags plain;
  plain.model_store = store_.string();
  plain.models = {"fashion.mar"};
  start = Load(plain);
  EXPECT_EQ(start.config.inference_address, "127.0.0.1:18089");
}

TEST(NormalizeAddressTest, TakesTorchServesAddresses) {
  std::string out, error;
  EXPECT_TRUE(NormalizeAddress("http://127.0.0.1:8080", &out, &error));
  EXPECT_EQ(out, "127.0.0.1:8080");
  EXPECT_TRUE(NormalizeAddress("HTTP://localhost", &out, &error));
  EXPECT_EQ(out, "localhost:80");
  EXPECT_TRUE(NormalizeAddress("http://[::1]:8081/", &out, &error));
  EXPECT_EQ(out, "[::1]:8081");
  EXPECT_TRUE(NormalizeAddress("http://[::1]", &out, &error));
  EXPECT_EQ(out, "[::1]:80");
  EXPECT_TRUE(NormalizeAddress("0.0.0.0:9", &out, &error));
  EXPECT_EQ(out, "0.0.0.0:9");
  EXPECT_FALSE(NormalizeAddress("https://127.0.0.1:8443", &out, &error));
  EXPECT_NE(error.find("https is not served"), std::string::npos) << error;
  for (const char* bad : {"ftp://x:1", "http://x:1/path", "127.0.0.1", "http://x:99999", ""}) {
    EXPECT_FALSE(NormalizeAddress(bad, &out, &error)) << bad;
    EXPECT_NE(error.find("must be host:port or http://host:port"), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace sg::serve
