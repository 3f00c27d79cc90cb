#include "comparator/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "comparator/comparison.h"
#include "comparator/state_codec.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

bool WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// The temporary file, fsynced, renamed over `path`, then the folder fsynced: the rename itself
// reaches the disk, so a power cut after the call keeps the new file.
bool WriteAtomically(const std::string& path, const std::string& bytes, std::string* error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = Errno(tmp);
    return false;
  }
  const bool written = WriteAll(fd, bytes) && ::fsync(fd) == 0;
  const std::string why = written ? "" : Errno(tmp);
  ::close(fd);
  if (!written) {
    *error = why;
    std::remove(tmp.c_str());
    return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = Errno(tmp + ": cannot rename to " + path);
    std::remove(tmp.c_str());
    return false;
  }
  std::string folder = std::filesystem::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 || ::fsync(dir) != 0) {
    *error = Errno(folder + ": fsync");
    if (dir >= 0) ::close(dir);
    return false;
  }
  ::close(dir);
  return true;
}

std::string UtcStamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

std::string CompareConfigHash(const std::string& config_text) {
  const json parsed = json::parse(config_text, nullptr, false);
  return Sha256Hex(parsed.is_discarded() ? config_text : parsed.dump());
}

bool WriteCheckpoint(const std::string& path, const CheckpointIdentity& identity,
                     const Comparison& comparison, uint64_t judged, std::string* error) {
  const json state = StateCodec::Encode(comparison);
  const std::string state_text = state.dump();
  const json doc = {{"format", kCheckpointFormat},
                    {"version", kCheckpointVersion},
                    {"run", identity.run},
                    {"config_sha256", identity.config_sha256},
                    {"written_at_us", NowUs()},
                    {"judged", judged},
                    {"pairs", comparison.pairs()},
                    {"state_sha256", Sha256Hex(state_text)},
                    {"state", state}};
  return WriteAtomically(path, doc.dump(-1, ' ', false, json::error_handler_t::strict) + "\n",
                         error);
}

LoadedCheckpoint LoadCheckpoint(const std::string& path, const CheckpointIdentity& identity,
                                std::shared_ptr<const CompareConfig> config,
                                Comparison* comparison) {
  LoadedCheckpoint out;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return out;
  auto refuse = [&](std::string why) {
    out.result = LoadedCheckpoint::Result::kRefused;
    out.reason = std::move(why);
    const std::string aside = path + ".refused-" + UtcStamp();
    if (std::rename(path.c_str(), aside.c_str()) == 0) out.set_aside = aside;
    return out;
  };
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return refuse("cannot read it");
  const json doc = json::parse(text.str(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return refuse("not JSON (truncated or corrupt)");
  if (doc.value("format", "") != kCheckpointFormat) return refuse("not a comparison checkpoint");
  if (doc.value("version", 0) != kCheckpointVersion) {
    return refuse("version " + doc.value("version", json()).dump() + ", this build reads " +
                  std::to_string(kCheckpointVersion));
  }
  if (doc.value("run", "") != identity.run) {
    return refuse("of run \"" + doc.value("run", "") + "\", this is run \"" + identity.run + "\"");
  }
  if (doc.value("config_sha256", "") != identity.config_sha256) {
    return refuse("written with another compare config (sha256 " + doc.value("config_sha256", "") +
                  ", now " + identity.config_sha256 + ")");
  }
  if (!doc.contains("state") || doc.value("state_sha256", "") != Sha256Hex(doc["state"].dump())) {
    return refuse("the state's checksum does not match (corrupt)");
  }
  Comparison loaded(std::move(config));
  std::string error;
  if (!DecodeComparisonState(doc["state"], &loaded, &error)) {
    return refuse("the state cannot be read: " + error);
  }
  *comparison = std::move(loaded);
  out.result = LoadedCheckpoint::Result::kLoaded;
  out.judged = doc.value("judged", uint64_t{0});
  out.pairs = doc.value("pairs", uint64_t{0});
  out.written_at_us = doc.value("written_at_us", int64_t{0});
  return out;
}

}  // namespace sg::comparator
