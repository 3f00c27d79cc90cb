// TorchServe model archives (model_archive.h): real zip files written here with libzip around the
// real TorchScript fixtures, opened, extracted and refused.
#include "model_server/model_archive.h"

#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"
#include "tests/unit/model_server/test_archives.h"

namespace sg::serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sg::testing::ReadFile;
using sg::testing::TempDir;

using Entries = serve::testing::ArchiveEntries;
using serve::testing::MarManifest;

std::string Fixture(const std::string& name) {
  return ReadFile(sg::testing::ModelFixture(name));
}

json FashionModel() {
  return {{"modelName", "fashion"},
          {"serializedFile", "fashion_tiny.pt"},
          {"handler", "image_classifier"},
          {"modelVersion", "2.0"},
          {"configFile", "model-config.yaml"}};
}

Entries FashionEntries(const json& manifest, const std::string& yaml) {
  return {{"MAR-INF/MANIFEST.json", manifest.dump()},
          {"fashion_tiny.pt", Fixture("fashion_tiny.pt")},
          {"index_to_name.json", Fixture("fashion_index_to_name.json")},
          {"model-config.yaml", yaml}};
}

struct Opened {
  bool ok = false;
  ModelConfig model;
  std::string error;
  std::vector<std::string> warnings;
  std::set<std::string> yaml_keys;
};

class ModelArchiveTest : public ::testing::Test {
 protected:
  // Writes `entries` as NAME.mar in the test's folder and opens it.
  Opened OpenZip(const Entries& entries, const std::string& name = "fashion.mar") {
    fs::path mar = dir_.path() / name;
    EXPECT_TRUE(serve::testing::WriteZip(mar, entries));
    return Open(mar.string());
  }
  Opened Open(const std::string& path) {
    Opened o;
    o.ok = OpenModelArchive(path, work_.string(), &o.model, &o.error, &o.warnings, &o.yaml_keys);
    return o;
  }
  // How many files are left under the work folder (refused archives leave none).
  int FilesInWork() const {
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(work_, ec)) n += e.is_regular_file();
    return n;
  }

  TempDir dir_;
  fs::path work_ = dir_.path() / "work";
};

TEST_F(ModelArchiveTest, OpensAMarWithItsConfigAndLabels) {
  auto o = OpenZip(FashionEntries(MarManifest(FashionModel()),
                                  "minWorkers: 2\nmaxWorkers: 2\nbatchSize: 4\n"
                                  "maxBatchDelay: 20\nresponseTimeout: 7\njobQueueSize: 30\n"));
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.model.name, "fashion");
  EXPECT_EQ(o.model.url, "fashion.mar");
  EXPECT_EQ(o.model.version, "2.0");
  EXPECT_EQ(o.model.handler, HandlerKind::kImageClassifier);
  EXPECT_EQ(o.model.workers, 2);
  EXPECT_EQ(o.model.batch_size, 4);
  EXPECT_EQ(o.model.max_batch_delay, std::chrono::milliseconds(20));
  EXPECT_EQ(o.model.response_timeout, std::chrono::seconds(7));
  EXPECT_EQ(o.model.job_queue_size, 30);
  EXPECT_EQ(o.yaml_keys,
            (std::set<std::string>{"minWorkers", "maxWorkers", "batchSize", "maxBatchDelay",
                                   "responseTimeout", "jobQueueSize"}));
  EXPECT_TRUE(o.warnings.empty()) << o.warnings[0];
  // The extracted files are under the work folder, byte for byte.
  EXPECT_EQ(fs::path(o.model.path).filename(), "fashion_tiny.pt");
  EXPECT_EQ(o.model.path.rfind(work_.string(), 0), 0u) << o.model.path;
  EXPECT_EQ(ReadFile(o.model.path), Fixture("fashion_tiny.pt"));
  EXPECT_EQ(ReadFile(o.model.labels_path), Fixture("fashion_index_to_name.json"));
  // TorchServe's image_classifier defaults are ModelConfig's own.
  EXPECT_EQ(o.model.preprocess.resize, 256);
  EXPECT_EQ(o.model.preprocess.crop, 224);
  EXPECT_EQ(o.model.topk, 5);
}

TEST_F(ModelArchiveTest, FieldsTheArchiveDoesNotSetKeepTheCallersValues) {
  json model = FashionModel();
  model.erase("configFile");
  Opened o;
  o.model.max_batch_delay = std::chrono::milliseconds(100);
  o.model.workers = 3;
  ASSERT_TRUE(serve::testing::WriteZip(dir_.path() / "a.mar",
                                       {{"MAR-INF/MANIFEST.json", MarManifest(model).dump()},
                                        {"fashion_tiny.pt", Fixture("fashion_tiny.pt")}}));
  ASSERT_TRUE(OpenModelArchive((dir_.path() / "a.mar").string(), work_.string(), &o.model, &o.error,
                               nullptr, &o.yaml_keys))
      << o.error;
  EXPECT_EQ(o.model.max_batch_delay, std::chrono::milliseconds(100));
  EXPECT_EQ(o.model.workers, 3);
  EXPECT_EQ(o.model.labels_path, "");  // no index_to_name.json: class indices
  EXPECT_TRUE(o.yaml_keys.empty());
}

TEST_F(ModelArchiveTest, NameDefaultsToTheFileNameAndVersionIsRequired) {
  json model = FashionModel();
  model.erase("modelName");
  auto o = OpenZip(FashionEntries(MarManifest(model), ""), "shoes.mar");
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.model.name, "shoes");

  model.erase("modelVersion");
  o = OpenZip(FashionEntries(MarManifest(model), ""));
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("$.model.modelVersion: missing"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("Model version is not defined."), std::string::npos) << o.error;
}

TEST_F(ModelArchiveTest, OpensAnExtractedFolderInPlace) {
  fs::path folder = dir_.path() / "fashion";
  for (const auto& [name, content] :
       FashionEntries(MarManifest(FashionModel()), "batchSize: 2\n")) {
    fs::create_directories((folder / name).parent_path());
    dir_.Write("fashion/" + name, content);
  }
  auto o = Open(folder.string());
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.model.path, (folder / "fashion_tiny.pt").string());
  EXPECT_EQ(o.model.batch_size, 2);
  EXPECT_FALSE(fs::exists(work_));  // nothing extracted
}

TEST_F(ModelArchiveTest, IgnoredSettingsAreWarnedAboutOneByOne) {
  auto o = OpenZip(FashionEntries(MarManifest(FashionModel()),
                                  "minWorkers: 1\nmaxWorkers: 4\ndeviceType: gpu\n"
                                  "parallelType: pp\npippy:\n  rpc_timeout: 1800\n"));
  ASSERT_TRUE(o.ok) << o.error;
  std::string all;
  for (const auto& w : o.warnings) all += w + "\n";
  EXPECT_EQ(o.warnings.size(), 4u) << all;
  for (const char* key :
       {"maxWorkers: ignored", "deviceType: ignored", "parallelType: ignored", "pippy: ignored"}) {
    EXPECT_NE(all.find(std::string("model-config.yaml: ") + key), std::string::npos) << all;
  }
}

// Each refusal names what is wrong and what to do.
struct Refusal {
  const char* what;
  std::function<Entries()> entries;
  std::vector<std::string> expected;  // substrings of the error
};

TEST_F(ModelArchiveTest, RefusesWhatCannotBeServedSayingWhy) {
  auto with = [](std::function<void(json&)> edit, std::string yaml = "") {
    return [edit, yaml] {
      json model = FashionModel();
      edit(model);
      return FashionEntries(MarManifest(model), yaml);
    };
  };
  std::vector<Refusal> cases = {
      {"eager model",
       with([](json& m) { m["modelFile"] = "model.py"; }),
       {"$.model.modelFile: \"model.py\" is an eager model", "torch.jit.script",
        "--serialized-file"}},
      {"custom handler",
       with([](json& m) { m["handler"] = "handler.py"; }),
       {"$.model.handler: \"handler.py\" is a custom Python handler", "torch.jit.trace"}},
      {"handler entry point",
       with([](json& m) { m["handler"] = "my_handler:handle"; }),
       {"\"my_handler:handle\" is a custom Python handler"}},
      {"object detector",
       with([](json& m) { m["handler"] = "object_detector"; }),
       {"TorchServe's built-in \"object_detector\" is not served by sg-serve"}},
      {"image segmenter",
       with([](json& m) { m["handler"] = "image_segmenter"; }),
       {"\"image_segmenter\" is not served by sg-serve"}},
      {"missing serialized file",
       with([](json& m) { m.erase("serializedFile"); }),
       {"$.model.serializedFile: missing", "--serialized-file"}},
      {"serialized file not in the archive",
       with([](json& m) { m["serializedFile"] = "other.pt"; }),
       {"\"other.pt\" is not in the archive"}},
      {"bad yaml", with([](json&) {}, "minWorkers: [1\n"), {"model-config.yaml: line ", "column"}},
      {"wrongly typed yaml",
       with([](json&) {}, "batchSize: four\n"),
       {"model-config.yaml: batchSize: must be an integer"}},
      {"zero workers", with([](json&) {}, "minWorkers: 0\n"), {"minWorkers: must be >= 1"}},
      {"other runtime",
       [] {
         json manifest = MarManifest(FashionModel());
         manifest["runtime"] = "LSP";
         return FashionEntries(manifest, "");
       },
       {"$.runtime: \"LSP\" is not served here"}},
      {"no manifest",
       [] {
         return Entries{{"fashion_tiny.pt", Fixture("fashion_tiny.pt")}};
       },
       {"MAR-INF/MANIFEST.json is missing"}},
      {"state_dict instead of TorchScript",
       [] {
         // What torch.save(model.state_dict()) writes: a zip with data.pkl, no code.
         return Entries{{"MAR-INF/MANIFEST.json", MarManifest(FashionModel()).dump()},
                        {"fashion_tiny.pt", [] {
                           TempDir d;
                           serve::testing::WriteZip(d.path() / "sd.pt", {{"archive/data.pkl", "x"},
                                                                         {"archive/version", "3"}});
                           return ReadFile(d.path() / "sd.pt");
                         }()}};
       },
       {"fashion_tiny.pt: a torch.save file without TorchScript code", "torch.jit.script"}},
      {"ONNX file",
       [] {
         return Entries{{"MAR-INF/MANIFEST.json", MarManifest(FashionModel()).dump()},
                        {"fashion_tiny.pt", "\x08\x07\x12\x07pytorch"}};
       },
       {"fashion_tiny.pt: not a zip file"}},
      {"path traversal",
       [] {
         auto e = FashionEntries(MarManifest(FashionModel()), "");
         e.push_back({"../escaped.txt", "x"});
         return e;
       },
       {"entry \"../escaped.txt\" has an absolute name or a .. component"}},
      {"absolute entry",
       [] {
         auto e = FashionEntries(MarManifest(FashionModel()), "");
         e.push_back({"/tmp/escaped.txt", "x"});
         return e;
       },
       {"entry \"/tmp/escaped.txt\" has an absolute name"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto o = OpenZip(c.entries());
    EXPECT_FALSE(o.ok);
    for (const auto& s : c.expected) EXPECT_NE(o.error.find(s), std::string::npos) << o.error;
    EXPECT_EQ(o.error.rfind((dir_.path() / "fashion.mar").string(), 0), 0u) << o.error;
    EXPECT_EQ(o.error.find('\n'), std::string::npos) << o.error;
    EXPECT_EQ(FilesInWork(), 0) << "a refused archive leaves nothing extracted";
  }
  EXPECT_FALSE(fs::exists(dir_.path() / "escaped.txt"));
  EXPECT_FALSE(fs::exists(work_ / "escaped.txt"));
}

TEST_F(ModelArchiveTest, RefusesTarGzAndMissingPaths) {
  auto o = Open((dir_.path() / "nothing.mar").string());
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("no such model archive"), std::string::npos) << o.error;
  auto tgz = dir_.Write("m.tar.gz", std::string("\x1f\x8b\x08\x00", 4) + "rest");
  o = Open(tgz.string());
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("a .tar.gz archive (--archive-format tgz): extract it"), std::string::npos)
      << o.error;
}

TEST_F(ModelArchiveTest, ExtractionIsBoundedInSize) {
  fs::path mar = dir_.path() / "big.mar";
  ASSERT_TRUE(serve::testing::WriteZip(
      mar, {{"a.bin", std::string(3000, 'a')}, {"b.bin", std::string(3000, 'b')}}));
  fs::create_directories(work_);
  std::string error;
  EXPECT_FALSE(ExtractArchive(mar.string(), work_.string(), 5000, &error));
  EXPECT_NE(error.find("extracts to more than 5000 bytes"), std::string::npos) << error;
  EXPECT_EQ(FilesInWork(), 0) << "refused from the declared sizes, before writing";
  EXPECT_TRUE(ExtractArchive(mar.string(), work_.string(), 6000, &error)) << error;
  EXPECT_EQ(ReadFile(work_ / "b.bin"), std::string(3000, 'b'));
}

}  // namespace
}  // namespace sg::serve
