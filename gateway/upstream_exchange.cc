#include "gateway/upstream_exchange.h"

namespace sg::gateway {

const char* OutcomeName(UpstreamOutcome outcome) {
  switch (outcome) {
    case UpstreamOutcome::kOk:
      return "ok";
    case UpstreamOutcome::kError:
      return "error";
    case UpstreamOutcome::kTimeout:
      return "timeout";
    case UpstreamOutcome::kConnectFailed:
      return "connect_failed";
    case UpstreamOutcome::kOverload:
      return "overload";
  }
  return "error";
}

void SetUpstreamSocketOptions(Socket& socket) {
  beast::error_code ignored;  // a socket without it is slower, not wrong
  socket.set_option(tcp::no_delay(true), ignored);
}

template class BasicUpstreamExchange<Socket>;

}  // namespace sg::gateway
