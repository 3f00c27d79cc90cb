#include "gateway/config_environment.h"

#include <netdb.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

namespace sg::gateway {
namespace {

namespace fs = std::filesystem;

// Empty when `host` resolves (as the upstream pool resolves it at start), else the reason.
std::string ResolveProblem(const Endpoint& endpoint) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port = std::to_string(endpoint.port);
  int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found);
  if (found) freeaddrinfo(found);
  if (rc == 0) return {};
  return "cannot resolve \"" + endpoint.host + "\": " + gai_strerror(rc);
}

// Empty when `dir` is a folder this process may create files in, else the reason.
std::string WritableFolderProblem(const fs::path& dir) {
  std::error_code ec;
  auto status = fs::status(dir, ec);
  // Built by appending: GCC 12's -Wrestrict misfires on "literal" + std::string&& (PR 105329).
  std::string quoted = "\"";
  quoted += dir.string();
  quoted += '"';
  if (!fs::exists(status)) return "folder " + quoted + " does not exist";
  if (!fs::is_directory(status)) return quoted + " is not a folder";
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return "folder " + quoted +
           " is not writable: " + std::error_code(errno, std::generic_category()).message();
  }
  return {};
}

// The folder a file at `path` goes into ("." for a bare name).
fs::path FolderOf(const std::string& path) {
  auto parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// Empty when a file at `file` can be replaced the atomic way (a temporary file beside it renamed
// over it: the folder must take new files, and the name must not be a folder), else the reason.
std::string ReplaceableFileProblem(const std::string& file) {
  if (auto why = WritableFolderProblem(FolderOf(file)); !why.empty()) return why;
  std::error_code ec;
  if (fs::is_directory(file, ec)) return "\"" + file + "\" is a folder, not a file";
  return {};
}

}  // namespace

std::vector<std::string> CheckGatewayEnvironment(const std::string& file,
                                                 const GatewayConfig& config) {
  std::vector<std::string> problems;
  auto report = [&](const std::string& path, const std::string& reason) {
    problems.push_back(file + ": " + path + ": " + reason);
  };
  for (const auto& upstream : config.upstreams) {
    for (size_t i = 0; i < upstream.endpoints.size(); ++i) {
      if (auto why = ResolveProblem(upstream.endpoints[i]); !why.empty()) {
        report("$.upstreams." + upstream.name + ".endpoints[" + std::to_string(i) + "]", why);
      }
    }
  }
  if (const auto& path = config.capture.pair_log.path; !path.empty()) {
    if (auto why = WritableFolderProblem(FolderOf(path)); !why.empty()) {
      report("$.capture.pair_log.path", why);
    }
  }
  for (size_t r = 0; r < config.routes.size(); ++r) {
    // A cutover writes its state at every change, the atomic way.
    const auto& file = config.routes[r].cutover.state_file;
    if (!config.routes[r].cutover.enabled() || file.empty()) continue;
    if (auto why = ReplaceableFileProblem(file); !why.empty()) {
      report("$.routes[" + std::to_string(r) + "].cutover.state_file", why);
    }
  }
  if (const auto& path = config.access_log_path; !path.empty()) {
    if (auto why = WritableFolderProblem(FolderOf(path)); !why.empty()) {
      report("$.access_log_path", why);
    }
  }
  if (const auto& file = config.comparison.checkpoint_file; !file.empty()) {
    // Written the same way every checkpoint_interval, and set aside beside itself when refused.
    if (auto why = ReplaceableFileProblem(file); !why.empty()) {
      report("$.comparison.checkpoint_file", why);
    }
  }
  if (fs::path dir = config.comparison.report_dir; !dir.empty()) {
    // Start-up makes the folder and its parents: the nearest one that exists must be writable.
    std::error_code ec;
    while (!fs::exists(dir, ec)) {
      auto parent = dir.parent_path();
      if (parent.empty()) {
        dir = ".";
        break;
      }
      if (parent == dir) break;
      dir = parent;
    }
    if (auto why = WritableFolderProblem(dir); !why.empty()) {
      report("$.comparison.report_dir", why);
    }
  }
  return problems;
}

}  // namespace sg::gateway
