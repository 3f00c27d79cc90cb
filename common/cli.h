// Command-line conventions shared by every executable: `--version`, and one exit code for every
// usage error.
#pragma once

#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace sg {

// Exit code of every executable for bad input: a usage error, a bad config, a malformed file.
inline constexpr int kExitBadInput = 2;

// "<program> <version>", the version being the project's (CMake's project(VERSION)).
std::string VersionLine(const std::string& program);

// Adds `--version` to `app`: prints VersionLine(program) and exits 0.
void AddVersionFlag(CLI::App& app, const std::string& program);

// Parses the command line. Returns nullopt when the program should go on, else the code to exit
// with: 0 after --help or --version, kExitBadInput after any usage error (an unknown flag, a
// missing or malformed value), whose message CLI11 has printed. CLI11's own codes (105, 109, ...)
// would tell scripts nothing the message does not, and differ from the config errors' 2.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, const char* const* argv);

}  // namespace sg
