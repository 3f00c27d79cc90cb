// Where one prediction's time went, as the front process saw it and as its worker reported it,
// and its rendering as a standard Server-Timing response header (W3C Server Timing).
#pragma once

#include <chrono>
#include <string>

namespace sg::serve {

struct RequestTimings {
  std::chrono::microseconds queue{0};  // enqueue to dispatch to a worker (0 if never dispatched)
  // The worker answered: the three stages below are known. They are the stages of the whole
  // batch the request ran in (with batch_size 1, of the request alone).
  bool has_worker = false;
  std::chrono::microseconds preprocess{0};   // decode, resize, normalise (worker)
  std::chrono::microseconds forward{0};      // the model (worker)
  std::chrono::microseconds postprocess{0};  // softmax, top-k, JSON (worker)
  std::chrono::microseconds total{0};        // enqueue to the reply's arrival in the front
};

// "queue;dur=0.012, preprocess;dur=0.540, forward;dur=9.710, postprocess;dur=0.020,
// total;dur=10.410": milliseconds with microsecond resolution; the worker's stages only when
// known.
std::string FormatServerTiming(const RequestTimings& timings);

}  // namespace sg::serve
