// Compressed log files: what sg-compare and sg-load read from the gateway's rotated pair logs.
// The reference is Debian's zstd command (scripts/setup installs it): files it writes must read
// back exactly, and files written here must decompress with it.
#include "common/zstd_file.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/test_support.h"

namespace sg {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(std::istream& in) {
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string FileBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return ReadAll(in);
}

// Many JSON-like lines: compresses well, so one input block decodes to several output buffers.
std::string Lines(int n, const std::string& tag) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    text += R"({"v":1,"type":"pair","id":")" + tag + std::to_string(i) +
            R"(","primary":{"status":200,"body":"eyJwcm9iIjogMC45fQ=="}})" + "\n";
  }
  return text;
}

bool HaveZstdCommand() {
  return std::system("zstd --version >/dev/null 2>&1") == 0;
}

std::string Quote(const fs::path& path) {
  std::string quoted = "'";  // appended: GCC 12's -Wrestrict misfires on "'" + std::string&&
  quoted += path.string();
  return quoted += "'";
}

TEST(ZstdFileTest, CompressedHereDecompressesWithTheZstdCommand) {
  if (!HaveZstdCommand()) GTEST_SKIP() << "no zstd command (scripts/setup installs zstd)";
  testing::TempDir dir;
  const std::string text = Lines(200000, "a");  // about 16 MB
  auto plain = dir.Write("pairs.jsonl.1", text);
  const fs::path packed = dir.path() / "pairs.jsonl.1.zst";
  std::string error;
  ASSERT_TRUE(CompressFileZstd(plain.string(), packed.string(), 3, &error)) << error;
  EXPECT_TRUE(IsZstdFile(packed.string()));
  EXPECT_FALSE(IsZstdFile(plain.string()));
  EXPECT_FALSE(fs::exists(dir.path() / ".pairs.jsonl.1.zst.tmp"));
  EXPECT_LT(fs::file_size(packed), text.size() / 5);
  EXPECT_EQ(fs::status(packed).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  const fs::path back = dir.path() / "back";
  ASSERT_EQ(std::system(("zstd -q -d -c " + Quote(packed) + " > " + Quote(back)).c_str()), 0);
  EXPECT_EQ(FileBytes(back), text);
  // And through the reader, every byte (a 16 MB frame: many full output buffers in a row).
  auto in = OpenMaybeCompressed(packed.string(), &error);
  ASSERT_TRUE(in) << error;
  EXPECT_EQ(ReadAll(*in), text);
  EXPECT_EQ(CompressedStreamError(*in), "");
}

TEST(ZstdFileTest, ReadsWhatTheZstdCommandWroteFrameAfterFrame) {
  if (!HaveZstdCommand()) GTEST_SKIP() << "no zstd command (scripts/setup installs zstd)";
  testing::TempDir dir;
  const std::string a = Lines(3000, "a"), b = Lines(5, "b");
  auto fa = dir.Write("a", a), fb = dir.Write("b", b);
  const fs::path both = dir.path() / "both.zst";
  // Two frames in one file, as `cat x.zst y.zst` makes; `zstd -d` reads them as one text.
  ASSERT_EQ(std::system(("zstd -q -19 -c " + Quote(fa) + " > " + Quote(both) + " && zstd -q -c " +
                         Quote(fb) + " >> " + Quote(both))
                            .c_str()),
            0);
  std::string error;
  auto in = OpenMaybeCompressed(both.string(), &error);
  ASSERT_TRUE(in) << error;
  EXPECT_EQ(ReadAll(*in), a + b);
  EXPECT_EQ(CompressedStreamError(*in), "");
}

TEST(ZstdFileTest, AFewBytesThatDecodeToMegabytesComeOutWhole) {
  // 4 MB of one repeated line compress to a few hundred bytes, read in one go: every call
  // fills the output buffer, and the text must still come out whole.
  testing::TempDir dir;
  std::string text;
  for (int i = 0; i < 100000; ++i)
    text += R"({"v":1,"type":"counters","requests":0})"
            "\n";
  auto plain = dir.Write("same", text);
  const fs::path packed = dir.path() / "same.zst";
  std::string error;
  ASSERT_TRUE(CompressFileZstd(plain.string(), packed.string(), 3, &error)) << error;
  ASSERT_LT(fs::file_size(packed), 4096u);
  auto in = OpenMaybeCompressed(packed.string(), &error);
  ASSERT_TRUE(in) << error;
  EXPECT_EQ(ReadAll(*in).size(), text.size());
  EXPECT_EQ(CompressedStreamError(*in), "");
}

TEST(ZstdFileTest, PlainFilesReadAsTheyAre) {
  testing::TempDir dir;
  auto plain = dir.Write("p", "one\ntwo\n");
  std::string error;
  auto in = OpenMaybeCompressed(plain.string(), &error);
  ASSERT_TRUE(in) << error;
  EXPECT_EQ(ReadAll(*in), "one\ntwo\n");
  EXPECT_FALSE(OpenMaybeCompressed((dir.path() / "missing").string(), &error));
  EXPECT_NE(error.find("missing: cannot open"), std::string::npos) << error;
}

TEST(ZstdFileTest, TruncatedOrCorruptDataIsReportedNotSilentlyShort) {
  testing::TempDir dir;
  const std::string text = Lines(20000, "t");
  auto plain = dir.Write("p", text);
  const fs::path packed = dir.path() / "p.zst";
  std::string error;
  ASSERT_TRUE(CompressFileZstd(plain.string(), packed.string(), 3, &error)) << error;
  const std::string bytes = FileBytes(packed);

  auto truncated = dir.Write("truncated.zst", bytes.substr(0, bytes.size() / 2));
  auto in = OpenMaybeCompressed(truncated.string(), &error);
  ASSERT_TRUE(in) << error;
  std::string got = ReadAll(*in);
  EXPECT_LT(got.size(), text.size());
  EXPECT_EQ(text.compare(0, got.size(), got), 0) << "what was read is the start of the text";
  EXPECT_NE(CompressedStreamError(*in).find("truncated"), std::string::npos)
      << CompressedStreamError(*in);

  std::string damaged = bytes;
  for (size_t i = damaged.size() / 3; i < damaged.size() / 3 + 64; ++i) damaged[i] ^= 0x5a;
  auto corrupt = dir.Write("corrupt.zst", damaged);
  in = OpenMaybeCompressed(corrupt.string(), &error);
  ASSERT_TRUE(in) << error;
  ReadAll(*in);
  EXPECT_NE(CompressedStreamError(*in).find("corrupt zstd data"), std::string::npos)
      << CompressedStreamError(*in);
}

TEST(ZstdFileTest, CompressionFailureLeavesNoFileBehind) {
  testing::TempDir dir;
  std::string error;
  EXPECT_FALSE(
      CompressFileZstd((dir.path() / "none").string(), (dir.path() / "x.zst").string(), 3, &error));
  EXPECT_NE(error.find("none: cannot open"), std::string::npos) << error;
  auto plain = dir.Write("p", "text\n");
  EXPECT_FALSE(
      CompressFileZstd(plain.string(), (dir.path() / "no/such/dir.zst").string(), 3, &error));
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(dir.path() / "x.zst"));
}

}  // namespace
}  // namespace sg
