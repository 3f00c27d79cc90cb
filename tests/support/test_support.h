// Helpers for integration tests: free ports, starting real binaries as child processes, waiting
// until they are ready, and a tiny blocking HTTP/1.1 client over real sockets.
//
// Every started process is stopped and reaped by its owner's destructor, so a failed ASSERT never
// leaves a server behind.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/subprocess.h"

namespace sg::testing {

// Directory of the built executables (build/bin) and the source tree, set by CMake.
std::filesystem::path BinDir();
std::filesystem::path SourceDir();
// A model of tests/fixtures/models (exported by scripts/export-test-models), by file name.
std::string ModelFixture(const std::string& name);

// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral range (so no
// outgoing connection takes it before the caller's server binds it); -1 when none is free.
int FreePort();

// True once something accepts TCP connections on 127.0.0.1:port.
bool WaitForPort(int port, std::chrono::milliseconds timeout);

// The whole file as bytes; "" when it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

// A kB field of /proc/<pid>/status ("VmRSS", "VmHWM", ...) in KiB; -1 when it cannot be read.
int64_t ProcStatusKiB(pid_t pid, std::string_view field);

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to path()/name and returns the full path.
  std::filesystem::path Write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

struct HttpResponse {
  int status = 0;
  std::string reason;
  // Header names lower-cased; repeated headers joined with ", ".
  std::map<std::string, std::string> headers;
  std::string body;
  std::string Header(const std::string& name) const;
};

struct HttpRequestSpec {
  std::string method = "GET";
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout = std::chrono::seconds(10);
};

// One request on a fresh connection ("Connection: close"); decodes Content-Length, chunked and
// read-until-close bodies. nullopt (with `error`) on connect failure, timeout or bad framing.
std::optional<HttpResponse> Http(int port, const HttpRequestSpec& spec,
                                 std::string* error = nullptr);
std::optional<HttpResponse> HttpGet(int port, const std::string& target);

// Sends raw bytes and returns everything the peer sends until it closes or `timeout` passes.
std::string RawExchange(int port, const std::string& bytes,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

// One client connection kept open across requests (HTTP/1.1 keep-alive), for tests where the
// reuse of a connection matters (Http opens a fresh one per request). Responses must be framed
// by Content-Length (or have no body: HEAD, 1xx, 204, 304).
class HttpConnection {
 public:
  // Connects to 127.0.0.1:port; connected() tells whether it worked.
  explicit HttpConnection(int port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  bool connected() const { return fd_ >= 0; }
  // Sends `spec` (Host and Content-Length added as Http does, no "Connection: close") and reads
  // its response. nullopt (with `error`) on failure, timeout or a response without
  // Content-Length; the connection is closed then.
  std::optional<HttpResponse> Send(const HttpRequestSpec& spec, std::string* error = nullptr);
  // The two halves of Send, for requests sent in pieces: raw bytes (false when the send failed),
  // and the next response (to a request with `method`, read within `timeout`).
  bool Write(const std::string& bytes);
  std::optional<HttpResponse> Read(const std::string& method, std::chrono::milliseconds timeout,
                                   std::string* error = nullptr);

 private:
  int port_;
  int fd_ = -1;
  std::string pending_;  // bytes read past the last response
};

// A real binary run as a child, its stdout+stderr captured to a log file for failure messages.
class ChildProcess {
 public:
  // Starts BinDir()/name (or `name` itself when it contains '/'). Fails the current test (and
  // returns an empty object) when it cannot be started.
  ChildProcess(const std::string& name, const std::vector<std::string>& args,
               SpawnOptions options = {});
  // Stops the process; keeps the log file only when the test has failed (its path is printed).
  ~ChildProcess();
  ChildProcess(ChildProcess&&) = default;

  bool started() const { return process_.has_value(); }
  Subprocess& process() { return *process_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  // Waits until `port` accepts connections (or `health` returns 2xx when given). Returns false,
  // with the process log in `why`, when the process exits or the timeout passes first.
  bool WaitReady(int port, const std::string& health = "",
                 std::chrono::milliseconds timeout = std::chrono::seconds(30),
                 std::string* why = nullptr);
  // Stops the process (SIGTERM, then SIGKILL) and returns its wait status.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // The captured output so far.
  std::string Log() const;

 private:
  std::filesystem::path log_path_;
  std::optional<Subprocess> process_;
};

}  // namespace sg::testing
