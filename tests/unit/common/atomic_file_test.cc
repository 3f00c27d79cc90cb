// WriteFileAtomically: the checkpoint's and the cutover state's way of replacing a file whole.
#include "common/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/test_support.h"

namespace sg {
namespace {

namespace fs = std::filesystem;

std::string FileBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(AtomicFileTest, WritesANewFileWithItsModeAndLeavesNoTemporary) {
  testing::TempDir dir;
  const auto path = dir.path() / "state.json";
  std::string error;
  ASSERT_TRUE(WriteFileAtomically(path.string(), "{\"a\": 1}\n", 0600, &error)) << error;
  EXPECT_EQ(FileBytes(path), "{\"a\": 1}\n");
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST(AtomicFileTest, ReplacesTheOldContentWholeEvenOverALongerStaleTemporary) {
  testing::TempDir dir;
  const auto path = dir.Write("state.json", "old and longer than the new content\n");
  // A crash while writing left a temporary behind: it is truncated, not written over in place.
  dir.Write("state.json.tmp", "a half-written temporary file from a crash, longer still\n");
  std::string error;
  ASSERT_TRUE(WriteFileAtomically(path.string(), "new\n", 0644, &error)) << error;
  EXPECT_EQ(FileBytes(path), "new\n");
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST(AtomicFileTest, AFailureNamesTheFileAndKeepsTheOldOne) {
  testing::TempDir dir;
  const auto path = dir.Write("state.json", "old\n");
  // The temporary cannot be created: a folder has its name.
  fs::create_directory(path.string() + ".tmp");
  std::string error;
  EXPECT_FALSE(WriteFileAtomically(path.string(), "new\n", 0644, &error));
  EXPECT_NE(error.find(path.string() + ".tmp: "), std::string::npos) << error;
  EXPECT_EQ(FileBytes(path), "old\n");
  // A missing folder: nothing written anywhere.
  const auto missing = dir.path() / "no-such-folder" / "state.json";
  EXPECT_FALSE(WriteFileAtomically(missing.string(), "new\n", 0644, &error));
  EXPECT_NE(error.find("no-such-folder/state.json.tmp: No such file or directory"),
            std::string::npos)
      << error;
  // The target is a folder: the rename fails, the temporary does not stay.
  const auto folder = dir.path() / "a-folder";
  fs::create_directories(folder / "inside");
  EXPECT_FALSE(WriteFileAtomically(folder.string(), "new\n", 0644, &error));
  EXPECT_NE(error.find("cannot rename to " + folder.string()), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(folder.string() + ".tmp"));
  EXPECT_TRUE(fs::is_directory(folder / "inside"));
}

TEST(AtomicFileTest, ABareNameIsWrittenInTheWorkingDirectory) {
  testing::TempDir dir;
  const auto before = fs::current_path();
  fs::current_path(dir.path());
  std::string error;
  const bool written = WriteFileAtomically("bare.json", "x\n", 0644, &error);
  fs::current_path(before);
  ASSERT_TRUE(written) << error;
  EXPECT_EQ(FileBytes(dir.path() / "bare.json"), "x\n");
}

}  // namespace
}  // namespace sg
