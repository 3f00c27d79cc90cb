#include "model_server/server_timing.h"

#include <cstdio>

namespace sg::serve {
namespace {

void Append(std::string& out, const char* name, std::chrono::microseconds d) {
  char text[64];
  long long us = d.count() < 0 ? 0 : static_cast<long long>(d.count());
  std::snprintf(text, sizeof text, "%s%s;dur=%lld.%03lld", out.empty() ? "" : ", ", name, us / 1000,
                us % 1000);
  out += text;
}

}  // namespace

std::string FormatServerTiming(const RequestTimings& t) {
  std::string out;
  Append(out, "queue", t.queue);
  if (t.has_worker) {
    Append(out, "preprocess", t.preprocess);
    Append(out, "forward", t.forward);
    Append(out, "postprocess", t.postprocess);
  }
  Append(out, "total", t.total);
  return out;
}

}  // namespace sg::serve
