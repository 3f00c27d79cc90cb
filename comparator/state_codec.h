// The exact state of a Comparison as JSON, for checkpoints (the online comparator's, docs/
// comparator.md "Checkpoints"): not the report (Comparison::ToJson, which summarises), but every
// counter, histogram bucket, reservoir entry, the reservoir's random state, slice, window and
// example, so that Decode(Encode(c)) continues exactly as c would have: SameState holds, and
// adding the same pairs to both gives the same state.
//
// Doubles are written as JSON numbers in their shortest round-trip form (non-finite ones as the
// strings "nan", "inf", "-inf"), so they read back bit for bit. What the compare config decides
// (bounds, edges, window widths) is not written: the state decodes into a Comparison built from
// the same config, which the checkpoint checks by the config's hash.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace sg::comparator {

class Comparison;
class OutcomeStats;
class LatencyHistogram;
class SignedHistogram;
class LatencyStats;
class ClassificationStats;
class ScoreStats;
class EmbeddingStats;
class SparseHistogram;
struct SliceStats;
class SliceMap;
class Timeline;
class WindowSeries;
class RunTimeline;
class WorstExamples;
class Coverage;

// Every aggregate's Encode and Decode (friends of the aggregates). Decode replaces the state of an
// aggregate built from the config the state was encoded with; it throws nlohmann::json::exception
// or std::invalid_argument on a state it cannot read.
struct StateCodec {
  static nlohmann::json Encode(const Comparison& x);
  static void Decode(const nlohmann::json& state, Comparison* x);
  static nlohmann::json Encode(const OutcomeStats& x);
  static void Decode(const nlohmann::json& state, OutcomeStats* x);
  static nlohmann::json Encode(const LatencyHistogram& x);
  static void Decode(const nlohmann::json& state, LatencyHistogram* x);
  static nlohmann::json Encode(const SignedHistogram& x);
  static void Decode(const nlohmann::json& state, SignedHistogram* x);
  static nlohmann::json Encode(const LatencyStats& x);
  static void Decode(const nlohmann::json& state, LatencyStats* x);
  static nlohmann::json Encode(const ClassificationStats& x);
  static void Decode(const nlohmann::json& state, ClassificationStats* x);
  static nlohmann::json Encode(const ScoreStats& x);
  static void Decode(const nlohmann::json& state, ScoreStats* x);
  static nlohmann::json Encode(const EmbeddingStats& x);
  static void Decode(const nlohmann::json& state, EmbeddingStats* x);
  static nlohmann::json Encode(const SparseHistogram& x);
  static void Decode(const nlohmann::json& state, SparseHistogram* x);
  static nlohmann::json Encode(const SliceStats& x);
  static void Decode(const nlohmann::json& state, SliceStats* x);
  static nlohmann::json Encode(const SliceMap& x);
  static void Decode(const nlohmann::json& state, SliceMap* x);
  static nlohmann::json Encode(const Timeline& x);
  static void Decode(const nlohmann::json& state, Timeline* x);
  static nlohmann::json Encode(const WindowSeries& x);
  static void Decode(const nlohmann::json& state, WindowSeries* x);
  static nlohmann::json Encode(const RunTimeline& x);
  static void Decode(const nlohmann::json& state, RunTimeline* x);
  static nlohmann::json Encode(const WorstExamples& x);
  static void Decode(const nlohmann::json& state, WorstExamples* x);
  static nlohmann::json Encode(const Coverage& x);
  static void Decode(const nlohmann::json& state, Coverage* x);
};

// Decode without exceptions: false with `error` (what could not be read, and where).
bool DecodeComparisonState(const nlohmann::json& state, Comparison* comparison, std::string* error);

}  // namespace sg::comparator
