// Gateway: the whole proxy. Owns the I/O threads, the client listener, the admin listener, the
// upstream pools, the mirrors and the periodic counters; stops gracefully on SIGTERM/SIGINT.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gateway/gateway_config.h"
#include "gateway/pair_sink.h"

namespace sg::comparator {
class OnlineComparator;
}  // namespace sg::comparator

namespace sg::gateway {

class Gateway {
 public:
  // `sink` may be null (no capture). The gateway submits pair and counters records to it and
  // never closes it: the owner closes it after Wait() returns.
  // `online` may be null (no comparison): it is the comparator that `sink` feeds (directly or
  // through a FanOutPairSink), read by the admin endpoints /admin/comparison* and /metrics.
  Gateway(GatewayConfig config, std::shared_ptr<PairSink> sink,
          std::shared_ptr<comparator::OnlineComparator> online = nullptr);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Resolves upstreams, binds both listeners and starts the I/O threads. False with `error` set
  // when something cannot be set up (address in use, unresolvable upstream).
  bool Start(std::string* error);
  // Blocks until the gateway stopped (SIGTERM/SIGINT or Stop()), in-flight work finished or the
  // grace period ran out, the final counters records were submitted and admin requests being
  // handled off the I/O threads finished.
  void Wait();
  // Begins a graceful stop. Thread-safe.
  void Stop();

  uint16_t port() const;
  uint16_t admin_port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sg::gateway
