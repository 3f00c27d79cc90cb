#include "comparator/value_stats.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "comparator/intervals.h"
#include "comparator/json_numbers.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

json IntervalJson(const Interval& i) {
  return {{"estimate", Num(i.estimate)},
          {"low", i.valid ? Num(i.low) : json()},
          {"high", i.valid ? Num(i.high) : json()}};
}

Interval Scaled(Interval i, double by) {
  i.estimate /= by;
  i.low /= by;
  i.high /= by;
  return i;
}

}  // namespace

void ScoreStats::Add(const RegressionMetrics& m, std::optional<double> truth) {
  ++pairs_;
  values_ += m.n;
  beyond_ += !m.within;
  sum_abs_ += m.mae * static_cast<double>(m.n);
  sum_signed_ += m.sum_signed;
  sum_sq_ += m.sum_signed_sq;
  max_error_ = std::max(max_error_, m.max_error);
  max_rel_error_ = std::max(max_rel_error_, m.max_rel_error);
  primary_sum_ += m.primary_sum;
  primary_sum_sq_ += m.primary_sum_sq;
  if (truth && m.n == 1 && std::isfinite(*truth)) {
    const double p = m.primary_sum, s = m.primary_sum + m.sum_signed;
    const double ep = std::fabs(p - *truth), es = std::fabs(s - *truth);
    ++true_pairs_;
    true_abs_primary_ += ep;
    true_abs_shadow_ += es;
    true_delta_sum_ += es - ep;
    true_delta_sq_ += (es - ep) * (es - ep);
  }
}

void ScoreStats::Merge(const ScoreStats& o) {
  pairs_ += o.pairs_;
  values_ += o.values_;
  beyond_ += o.beyond_;
  sum_abs_ += o.sum_abs_;
  sum_signed_ += o.sum_signed_;
  sum_sq_ += o.sum_sq_;
  max_error_ = std::max(max_error_, o.max_error_);
  max_rel_error_ = std::max(max_rel_error_, o.max_rel_error_);
  primary_sum_ += o.primary_sum_;
  primary_sum_sq_ += o.primary_sum_sq_;
  true_pairs_ += o.true_pairs_;
  true_abs_primary_ += o.true_abs_primary_;
  true_abs_shadow_ += o.true_abs_shadow_;
  true_delta_sum_ += o.true_delta_sum_;
  true_delta_sq_ += o.true_delta_sq_;
}

json ScoreStats::ToJson(double level, const std::string& truth_header) const {
  json reg = {{"pairs", pairs_}, {"values", values_}};
  if (!values_) return reg;
  const double n = static_cast<double>(values_);
  reg["mae"] = sum_abs_ / n;
  reg["rmse"] = std::sqrt(sum_sq_ / n);
  reg["max_error"] = max_error_;
  reg["max_rel_error"] = max_rel_error_;
  reg["beyond_tolerance"] = beyond_;
  reg["beyond_tolerance_rate"] = static_cast<double>(beyond_) / static_cast<double>(pairs_);
  // The errors are judged against the spread of the primary's own values, so one gate fits any
  // score scale: a bias of 0.05 is large for scores with sd 0.2, noise for sd 50.
  const double var =
      values_ > 1 ? std::max(0.0, (primary_sum_sq_ - primary_sum_ * primary_sum_ / n) / (n - 1))
                  : 0.0;
  const double sd = std::sqrt(var);
  reg["primary_mean"] = primary_sum_ / n;
  reg["primary_sd"] = sd;
  const Interval bias = MeanInterval(values_, sum_signed_, sum_sq_, level);
  // |s - p| has the same sum of squares as s - p.
  const Interval mae = MeanInterval(values_, sum_abs_, sum_sq_, level);
  reg["bias"] = IntervalJson(bias);
  reg["interval_level"] = level;
  if (sd > 0) {
    reg["bias_rel"] = IntervalJson(Scaled(bias, sd));
    reg["mae_rel"] = IntervalJson(Scaled(mae, sd));
  }
  json truth = {{"header", truth_header}, {"pairs", true_pairs_}};
  if (true_pairs_) {
    const double tn = static_cast<double>(true_pairs_);
    const double primary_mae = true_abs_primary_ / tn;
    truth["primary_mae"] = primary_mae;
    truth["shadow_mae"] = true_abs_shadow_ / tn;
    const Interval delta = MeanInterval(true_pairs_, true_delta_sum_, true_delta_sq_, level);
    truth["mae_delta"] = IntervalJson(delta);
    if (primary_mae > 0) {
      Interval ratio = Scaled(delta, primary_mae);
      ratio.estimate += 1;
      ratio.low += 1;
      ratio.high += 1;
      truth["mae_ratio"] = IntervalJson(ratio);
    }
  }
  reg["truth"] = std::move(truth);
  return reg;
}

void EmbeddingStats::Add(const EmbeddingMetrics& m) {
  ++pairs_;
  sum_cosine_ += m.cosine;
  min_cosine_ = std::min(min_cosine_, m.cosine);
  sum_rel_l2_ += m.rel_l2;
  max_rel_l2_ = std::max(max_rel_l2_, m.rel_l2);
}

void EmbeddingStats::Merge(const EmbeddingStats& o) {
  pairs_ += o.pairs_;
  sum_cosine_ += o.sum_cosine_;
  min_cosine_ = std::min(min_cosine_, o.min_cosine_);
  sum_rel_l2_ += o.sum_rel_l2_;
  max_rel_l2_ = std::max(max_rel_l2_, o.max_rel_l2_);
}

json EmbeddingStats::ToJson() const {
  json emb = {{"pairs", pairs_}};
  if (pairs_) {
    emb["mean_cosine"] = sum_cosine_ / static_cast<double>(pairs_);
    emb["min_cosine"] = min_cosine_;
    emb["mean_rel_l2"] = sum_rel_l2_ / static_cast<double>(pairs_);
    emb["max_rel_l2"] = Num(max_rel_l2_);
  }
  return emb;
}

}  // namespace sg::comparator
