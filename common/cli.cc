#include "common/cli.h"

#include <CLI/CLI.hpp>

namespace sg {

std::string VersionLine(const std::string& program) {
  return program + " " + SG_VERSION;
}

void AddVersionFlag(CLI::App& app, const std::string& program) {
  app.set_version_flag("--version", VersionLine(program), "print the version and exit");
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // app.exit prints help, the version or the error, and says whether it was a success.
    return app.exit(e) == static_cast<int>(CLI::ExitCodes::Success) ? 0 : kExitBadInput;
  }
  return std::nullopt;
}

}  // namespace sg
