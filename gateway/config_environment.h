#pragma once

#include <string>
#include <vector>

#include "gateway/gateway_config.h"

namespace sg::gateway {

// What a gateway config needs from the machine it runs on, checked before anything starts: every
// upstream endpoint's host resolves, and the folders the pair log, the access log and the
// comparison reports go to exist (or, for report_dir, can be made) and are writable. ParseGateway
// Config checks the document alone, so `check` answers the same wherever it runs; this is the
// second half of `shadowgate check`, and start-up runs it too, so a config that passes both
// starts. Each problem reads "<file>: <JSON path>: <reason>", as the parser's do.
std::vector<std::string> CheckGatewayEnvironment(const std::string& file,
                                                 const GatewayConfig& config);

}  // namespace sg::gateway
