#include "comparator/classification_stats.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "comparator/intervals.h"
#include "comparator/json_numbers.h"
#include "comparator/rank_tests.h"

namespace sg::comparator {

using nlohmann::json;

namespace {}  // namespace

ClassificationStats::ClassificationStats(std::vector<double> margin_edges, size_t max_labels)
    : margin_edges_(std::move(margin_edges)),
      max_labels_(max_labels),
      margin_buckets_(margin_edges_.size() + 1) {}

void ClassificationStats::Add(const ClassificationMetrics& m, const std::string& true_label) {
  ++n_;
  if (m.top1_agree) ++top1_agree_;
  sum_topk_overlap_ += m.topk_overlap;
  sum_max_abs_diff_ += m.max_abs_diff;
  max_max_abs_diff_ = std::max(max_max_abs_diff_, m.max_abs_diff);
  sum_tv_ += m.total_variation;
  sum_js_ += m.js_distance;
  max_js_ = std::max(max_js_, m.js_distance);
  js_micro_.Record(static_cast<int64_t>(std::llround(m.js_distance * 1e6)));
  size_t bucket = 0;
  while (bucket < margin_edges_.size() && m.primary_margin >= margin_edges_[bucket]) ++bucket;
  ++margin_buckets_[bucket].pairs;
  if (!m.top1_agree) ++margin_buckets_[bucket].flips;
  AddConfusion(m.primary_top1, m.shadow_top1, 1);
  if (!true_label.empty()) {
    ++labeled_;
    const bool pc = m.primary_top1 == true_label, sc = m.shadow_top1 == true_label;
    primary_correct_ += pc;
    shadow_correct_ += sc;
    only_primary_correct_ += pc && !sc;
    only_shadow_correct_ += sc && !pc;
  }
}

void ClassificationStats::AddConfusion(const std::string& primary, const std::string& shadow,
                                       uint64_t count) {
  // At most max_labels labels per axis; later ones are "(other)".
  auto bounded = [&](std::set<std::string>& seen, const std::string& label) -> std::string {
    if (seen.count(label)) return label;
    if (seen.size() < max_labels_) {
      seen.insert(label);
      return label;
    }
    return "(other)";
  };
  confusion_[{bounded(confusion_primary_labels_, primary),
              bounded(confusion_shadow_labels_, shadow)}] += count;
}

void ClassificationStats::Merge(const ClassificationStats& o) {
  n_ += o.n_;
  top1_agree_ += o.top1_agree_;
  sum_topk_overlap_ += o.sum_topk_overlap_;
  sum_max_abs_diff_ += o.sum_max_abs_diff_;
  max_max_abs_diff_ = std::max(max_max_abs_diff_, o.max_max_abs_diff_);
  sum_tv_ += o.sum_tv_;
  sum_js_ += o.sum_js_;
  max_js_ = std::max(max_js_, o.max_js_);
  js_micro_.Merge(o.js_micro_);
  for (size_t i = 0; i < margin_buckets_.size() && i < o.margin_buckets_.size(); ++i) {
    margin_buckets_[i].pairs += o.margin_buckets_[i].pairs;
    margin_buckets_[i].flips += o.margin_buckets_[i].flips;
  }
  for (const auto& [k, v] : o.confusion_) AddConfusion(k.first, k.second, v);
  labeled_ += o.labeled_;
  primary_correct_ += o.primary_correct_;
  shadow_correct_ += o.shadow_correct_;
  only_primary_correct_ += o.only_primary_correct_;
  only_shadow_correct_ += o.only_shadow_correct_;
}

void ClassificationStats::ToJson(json& out, double level, const std::string& label_header) const {
  json cls = {{"pairs", n_}};
  if (n_) {
    const double n = static_cast<double>(n_);
    const Interval agreement = WilsonInterval(top1_agree_, n_, level);
    cls["top1_agreement"] = agreement.estimate;
    cls["top1_agreement_low"] = agreement.low;
    cls["top1_agreement_high"] = agreement.high;
    cls["interval_level"] = level;
    cls["top1_flips"] = n_ - top1_agree_;
    cls["mean_topk_overlap"] = sum_topk_overlap_ / n;
    cls["mean_max_abs_prob_diff"] = sum_max_abs_diff_ / n;
    cls["max_abs_prob_diff"] = max_max_abs_diff_;
    cls["mean_total_variation"] = sum_tv_ / n;
    cls["mean_js_distance"] = sum_js_ / n;
    cls["p99_js_distance"] = js_micro_.Quantile(0.99) / 1e6;
    cls["max_js_distance"] = max_js_;
  }
  json flips = json::array();
  for (size_t i = 0; i < margin_buckets_.size(); ++i) {
    const double low = i == 0 ? 0.0 : margin_edges_[i - 1];
    const double high = i < margin_edges_.size() ? margin_edges_[i] : 1.0;
    flips.push_back({{"margin_low", low},
                     {"margin_high", high},
                     {"pairs", margin_buckets_[i].pairs},
                     {"flips", margin_buckets_[i].flips},
                     {"flip_rate", Rate(margin_buckets_[i].flips, margin_buckets_[i].pairs)}});
  }
  cls["flips_by_primary_margin"] = flips;
  std::vector<std::string> labels;
  for (const auto& [k, v] : confusion_) {
    labels.push_back(k.first);
    labels.push_back(k.second);
  }
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  json rows = json::array();
  for (const auto& p : labels) {
    json row = json::array();
    for (const auto& s : labels) {
      auto it = confusion_.find({p, s});
      row.push_back(it == confusion_.end() ? 0 : it->second);
    }
    rows.push_back(row);
  }
  cls["confusion"] = {{"labels", labels}, {"rows_primary_cols_shadow", rows}};
  out["classification"] = std::move(cls);

  json acc = {{"label_header", label_header}, {"labeled", labeled_}};
  if (labeled_) {
    acc["primary"] = Rate(primary_correct_, labeled_);
    acc["shadow"] = Rate(shadow_correct_, labeled_);
    acc["delta"] = Rate(shadow_correct_, labeled_) - Rate(primary_correct_, labeled_);
    acc["primary_correct"] = primary_correct_;
    acc["shadow_correct"] = shadow_correct_;
    acc["only_primary_correct"] = only_primary_correct_;
    acc["only_shadow_correct"] = only_shadow_correct_;
    const PairedInterval d = PairedDifferenceInterval(only_shadow_correct_, only_primary_correct_,
                                                      labeled_, 1 - (1 - level) / 2);
    acc["delta_low"] = d.low;
    acc["delta_high"] = d.high;
    acc["interval_level"] = level;
  }
  out["accuracy"] = std::move(acc);
}

}  // namespace sg::comparator
