#include "tools/load/corpus.h"

#include <fstream>

#include <gtest/gtest.h>

#include "common/pair_record.h"
#include "common/zstd_file.h"
#include "tests/support/test_support.h"
#include "tools/load/idx_file.h"
#include "tools/load/png_codec.h"

namespace sg::load {
namespace {

const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

TEST(CorpusTest, LabelsSurviveFileNames) {
  for (const auto& label : FashionMnistClasses()) {
    std::string name = FileNameForLabel("00001", label, ".png");
    EXPECT_EQ(name.find('/'), std::string::npos) << name;
    EXPECT_EQ(LabelFromFileName(name), label) << name;
  }
  EXPECT_EQ(FileNameForLabel("7", "T-shirt/top", ".png"), "7__T-shirt%2Ftop.png");
  EXPECT_EQ(LabelFromFileName("7__100%25 cotton.png"), "100% cotton");
  EXPECT_EQ(LabelFromFileName(FileNameForLabel("x", "a%2Fb", ".bin")), "a%2Fb");
  EXPECT_EQ(LabelFromFileName("a__b__Trouser.png"), "Trouser");
  EXPECT_EQ(LabelFromFileName("plain.png"), std::nullopt);
  EXPECT_EQ(LabelFromFileName("empty__.png"), std::nullopt);
}

TEST(CorpusTest, ContentTypeFromExtension) {
  EXPECT_EQ(ContentTypeForFileName("a.PNG"), "image/png");
  EXPECT_EQ(ContentTypeForFileName("a.jpeg"), "image/jpeg");
  EXPECT_EQ(ContentTypeForFileName("a.json"), "application/json");
  EXPECT_EQ(ContentTypeForFileName("a"), "application/octet-stream");
}

TEST(CorpusTest, DirectoryCorpusIsSortedSkipsHiddenAndReadsLabels) {
  testing::TempDir dir;
  dir.Write("b__Bag.png", "BBB");
  dir.Write("a.json", "{}");
  dir.Write(".hidden", "x");
  std::string error;
  auto items = LoadDirectoryCorpus(dir.path().string(), &error);
  ASSERT_TRUE(items) << error;
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].name, "a.json");
  EXPECT_EQ((*items)[0].body, "{}");
  EXPECT_EQ((*items)[0].content_type, "application/json");
  EXPECT_EQ((*items)[0].label, std::nullopt);
  EXPECT_EQ((*items)[1].body, "BBB");
  EXPECT_EQ((*items)[1].label, "Bag");
  testing::TempDir empty;
  EXPECT_FALSE(LoadDirectoryCorpus(empty.path().string(), &error));
  EXPECT_NE(error.find("no files"), std::string::npos);
  EXPECT_FALSE(LoadDirectoryCorpus("/nonexistent-sg-dir", &error));
}

// The PNGs decode (with libpng) to exactly the IDX pixels, and carry the IDX labels.
TEST(CorpusTest, FashionMnistPngsRoundTripToIdxPixels) {
  std::string error;
  auto images = ReadIdxFile(std::string(kFashionMnist) + "/t10k-images-idx3-ubyte.gz", &error);
  ASSERT_TRUE(images) << error;
  auto labels = ReadIdxFile(std::string(kFashionMnist) + "/t10k-labels-idx1-ubyte.gz", &error);
  ASSERT_TRUE(labels) << error;
  ASSERT_EQ(images->dims, (std::vector<uint32_t>{10000, 28, 28}));
  auto items = LoadFashionMnistCorpus(kFashionMnist, 50, &error);
  ASSERT_TRUE(items) << error;
  ASSERT_EQ(items->size(), 50u);
  for (size_t i = 0; i < items->size(); ++i) {
    const auto& item = (*items)[i];
    EXPECT_EQ(item.content_type, "image/png");
    EXPECT_EQ(item.label, FashionMnistClasses()[labels->data[i]]);
    auto decoded = DecodePngToGrayForTest(item.body, &error);
    ASSERT_TRUE(decoded) << error;
    EXPECT_EQ(decoded->width, 28u);
    EXPECT_EQ(decoded->height, 28u);
    std::vector<uint8_t> expected(images->data.begin() + i * 784,
                                  images->data.begin() + (i + 1) * 784);
    EXPECT_EQ(decoded->pixels, expected) << "image " << i;
  }
  EXPECT_EQ((*items)[0].label, "Ankle boot");  // the well-known first test image
  // The images file may be named directly; its labels file is found beside it.
  auto by_file =
      LoadFashionMnistCorpus(std::string(kFashionMnist) + "/t10k-images-idx3-ubyte.gz", 3, &error);
  ASSERT_TRUE(by_file) << error;
  EXPECT_EQ((*by_file)[2].body, (*items)[2].body);
}

TEST(CorpusTest, BadIdxFilesAreReported) {
  testing::TempDir dir;
  std::string error;
  EXPECT_FALSE(ReadIdxFile(dir.Write("bad", "\x01\x02\x08\x01").string(), &error));
  EXPECT_NE(error.find("bad magic"), std::string::npos) << error;
  EXPECT_FALSE(ReadIdxFile(dir.Write("short", std::string("\0\0\x08\x01\0\0\0\x05xy", 10)).string(),
                           &error));
  EXPECT_NE(error.find("header says 5"), std::string::npos) << error;
  EXPECT_FALSE(LoadFashionMnistCorpus(dir.path().string(), 0, &error));
}

TEST(CorpusTest, PairLogCorpusTakesWholeBodiesAndLabels) {
  auto pair = [](const std::string& id, std::optional<std::string> body, bool truncated) {
    PairRecord record;
    record.id = id;
    record.request.method = "POST";
    record.request.target = "/predictions/fashion";
    record.request.headers = {{"content-type", "image/png"}, {"x-true-label", "Bag " + id}};
    record.request.body = body;
    record.request.body_truncated = truncated;
    record.request.size = body ? body->size() : 0;
    record.primary.outcome = record.shadow.outcome = "ok";
    return EncodePairLogLine(record);
  };
  MirrorCounters counters;
  counters.route = "r";
  CutoverDecision decision;  // a cutover's line carries no request: passed by, not skipped
  decision.route = "r";
  decision.decision = "rollback";
  decision.state = "ROLLED_BACK";
  testing::TempDir dir;
  auto path = dir.Write("pairs.jsonl",
                        pair("1", std::string("\x89PNG\0\1", 6), false) + "\n" +
                            pair("2", std::nullopt, false) + "\n" + EncodePairLogLine(counters) +
                            "\n" + EncodePairLogLine(decision) + "\n" + "not json\n" +
                            pair("3", "cut", true) + "\n" + pair("4", "ok", false) + "\n");
  std::string error;
  size_t skipped = 0;
  auto items = LoadPairLogCorpus(path.string(), "X-True-Label", &skipped, &error);
  ASSERT_TRUE(items) << error;
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ(skipped, 3u);  // no body, bad line, truncated body
  EXPECT_EQ((*items)[0].body, std::string("\x89PNG\0\1", 6));
  EXPECT_EQ((*items)[0].content_type, "image/png");
  EXPECT_EQ((*items)[0].label, "Bag 1");
  EXPECT_EQ((*items)[1].name, "4");
  auto unlabelled = LoadPairLogCorpus(path.string(), "", &skipped, &error);
  ASSERT_TRUE(unlabelled) << error;
  EXPECT_EQ((*unlabelled)[0].label, std::nullopt);
  EXPECT_FALSE(LoadPairLogCorpus(dir.Write("none.jsonl", "{}\n").string(), "", &skipped, &error));

  // A rotated log the gateway compressed gives the same corpus; a damaged one is an error.
  const auto packed = dir.path() / "pairs.jsonl.1.zst";
  ASSERT_TRUE(CompressFileZstd(path.string(), packed.string(), 3, &error)) << error;
  auto from_zstd = LoadPairLogCorpus(packed.string(), "X-True-Label", &skipped, &error);
  ASSERT_TRUE(from_zstd) << error;
  ASSERT_EQ(from_zstd->size(), 2u);
  EXPECT_EQ((*from_zstd)[0].body, (*items)[0].body);
  EXPECT_EQ((*from_zstd)[1].label, "Bag 4");
  std::ifstream in(packed, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto cut = dir.Write("cut.jsonl.zst", bytes.substr(0, bytes.size() - 8));
  EXPECT_FALSE(LoadPairLogCorpus(cut.string(), "", &skipped, &error));
  EXPECT_NE(error.find("cut.jsonl.zst: truncated zstd frame"), std::string::npos) << error;
}

}  // namespace
}  // namespace sg::load
