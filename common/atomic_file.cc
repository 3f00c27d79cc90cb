#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace sg {
namespace {

// "what: reason", built by appending: GCC 12's -Wrestrict misfires on chains of + (PR 105329).
std::string Errno(std::string_view what, std::string_view detail = {}) {
  const char* reason = std::strerror(errno);
  std::string text(what);
  text += detail;
  text += ": ";
  text += reason;
  return text;
}

bool WriteAll(int fd, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// fsyncs what `path` names, opened with `flags`.
bool Fsync(const std::string& path, int flags, std::string* error) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    *error = Errno(path, ": fsync");
    if (fd >= 0) ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

}  // namespace

bool WriteFileAtomically(const std::string& path, std::string_view bytes, mode_t mode,
                         std::string* error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    *error = Errno(tmp);
    return false;
  }
  bool ok = WriteAll(fd, bytes) && ::fsync(fd) == 0;
  std::string why = ok ? "" : Errno(tmp);
  if (::close(fd) != 0 && ok) {
    ok = false;
    why = Errno(tmp);
  }
  if (!ok) {
    *error = why;
    std::remove(tmp.c_str());
    return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = Errno(tmp, ": cannot rename to " + path);
    std::remove(tmp.c_str());
    return false;
  }
  return SyncFolderOf(path, error);
}

bool SyncFile(const std::string& path, std::string* error) {
  return Fsync(path, O_RDONLY, error);
}

bool SyncFolderOf(const std::string& path, std::string* error) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return Fsync(parent.empty() ? std::string(".") : parent.string(), O_RDONLY | O_DIRECTORY, error);
}

}  // namespace sg
