#include "model_server/tune_search.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace sg::serve {
namespace {

// The top class of one answer: a label, an argmax index or a score; nullopt when unreadable.
struct TopOne {
  std::string label;  // classifier label or tensor argmax
  std::optional<double> score;
};

std::optional<TopOne> ReadTopOne(const std::string& answer) {
  auto doc = nlohmann::json::parse(answer, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.empty()) return std::nullopt;
  if (doc.size() == 1 && doc.contains("score") && doc["score"].is_number()) {
    return TopOne{"", doc["score"].get<double>()};
  }
  if (doc.contains("data") && doc["data"].is_array()) {
    const auto& data = doc["data"];
    if (data.empty()) return std::nullopt;
    size_t best = 0;
    for (size_t i = 0; i < data.size(); ++i) {
      if (!data[i].is_number()) return std::nullopt;
      if (data[i].get<double>() > data[best].get<double>()) best = i;
    }
    return TopOne{std::to_string(best), std::nullopt};
  }
  // {"label": probability, ...}: the highest probability (nlohmann sorts keys, so not the
  // first key).
  std::string best;
  double best_p = -1;
  for (const auto& [label, p] : doc.items()) {
    if (!p.is_number()) return std::nullopt;
    if (p.get<double>() > best_p) best_p = p.get<double>(), best = label;
  }
  return TopOne{best, std::nullopt};
}

// The search's state: the trials, the clock, the budget and the progress lines.
class Search {
 public:
  Search(const TuneSpace& space, Measurer& measurer, const SearchOptions& options)
      : space_(space), measurer_(measurer), options_(options), start_(options.clock()) {
    for (const auto& v : space.variants) needs_reference_answers_ |= v.precision != "fp32";
  }

  double Elapsed() const { return options_.clock() - start_; }

  // The index of `config`'s trial, created when new.
  size_t TrialOf(const TuneConfig& config) {
    for (size_t i = 0; i < result_.trials.size(); ++i) {
      if (result_.trials[i].config == config) return i;
    }
    Trial trial;
    trial.config = config;
    trial.reference_naive = config == space_.WithDefaults(space_.naive);
    trial.reference_plan = config == space_.WithDefaults(space_.plan);
    result_.trials.push_back(trial);
    size_t index = result_.trials.size() - 1;
    if (trial.reference_naive) result_.naive = index;
    if (trial.reference_plan) result_.plan = index;
    return index;
  }

  // Whether one more run of `seconds` fits the budget.
  bool Fits(double seconds) const {
    return Elapsed() + Overhead() + seconds <= options_.budget_s + 1e-9;
  }

  double Overhead() const {
    if (overheads_.empty()) return options_.overhead_s;
    return std::accumulate(overheads_.begin(), overheads_.end(), 0.0) /
           static_cast<double>(overheads_.size());
  }

  // Measures trial `index` once for `seconds`; false when stopped before it ran.
  bool Run(size_t index, double seconds, int round, const std::string& stage) {
    if (measurer_.Stopped()) {
      result_.interrupted = true;
      return false;
    }
    Trial& t = result_.trials[index];
    bool numerics = t.config.ChangesNumerics();
    bool want_answers = numerics ? !t.agreement.has_value()
                                 : needs_reference_answers_ && reference_answers_.empty();
    double before = Elapsed();
    Measurement m = measurer_.Measure(t.config, seconds, want_answers);
    double took = Elapsed() - before;
    ++result_.measurements;
    if (m.error.empty()) overheads_.push_back(std::max(0.0, took - seconds));
    if (measurer_.Stopped() && !m.error.empty()) {
      result_.interrupted = true;  // cut short by the stop: not a result
      return false;
    }
    if (want_answers && m.error.empty()) {
      if (numerics && !reference_answers_.empty()) {
        t.agreement = TopOneAgreement(reference_answers_, m.answers);
      } else if (!numerics) {
        reference_answers_ = m.answers;
      }
    }
    m.answers.clear();
    t.round = round;
    t.runs.push_back(std::move(m));
    Progress(stage, t, seconds);
    return true;
  }

  void Progress(const std::string& stage, const Trial& t, double seconds) const {
    if (!options_.progress) return;
    const Measurement& m = t.runs.back();
    std::string line = "[" + Fixed(Elapsed(), 0) + "s" +
                       (exhaustive_ ? "" : "/" + Fixed(options_.budget_s, 0) + "s") + "] " + stage +
                       " " + t.config.Label() + " (" + Fixed(seconds, 1) + " s): ";
    if (!m.error.empty()) {
      line += "error: " + m.error;
    } else {
      line += Fixed(m.rps, 1) + " req/s, p99 " + Fixed(m.p99_ms, 2) + " ms, " +
              std::to_string(m.failures) + " failed";
      if (t.agreement) line += ", agreement " + Fixed(100 * *t.agreement, 2) + "%";
      std::string why = t.Ineligible(options_);
      line += why.empty() ? "" : " (" + why + ")";
    }
    options_.progress(line);
  }

  void Say(const std::string& line) const {
    if (options_.progress) options_.progress(line);
  }

  // Eligible trials among `indices`, best first.
  std::vector<size_t> Ranked(const std::vector<size_t>& indices) const {
    std::vector<size_t> out;
    for (size_t i : indices) {
      if (result_.trials[i].Ineligible(options_).empty()) out.push_back(i);
    }
    std::stable_sort(out.begin(), out.end(), [&](size_t a, size_t b) {
      return result_.trials[a].Rps() > result_.trials[b].Rps();
    });
    return out;
  }

  // Measures every trial of `indices` (references added) for one round; returns the measured
  // ones (false in `complete` when the budget or a stop cut it short). `contenders`: the trials
  // of `indices`, before the references; `expand_after`: the next round adds the leaders'
  // variants.
  std::vector<size_t> Round(std::vector<size_t> indices, int round, bool expand_after,
                            double min_seconds, bool* complete) {
    size_t contenders = indices.size();
    // The references first: a budget that ends the round early still leaves the ratios.
    std::vector<size_t> unique, order;
    for (auto ref : {result_.naive, result_.plan}) {
      if (ref) order.push_back(*ref);
    }
    order.insert(order.end(), indices.begin(), indices.end());
    for (size_t i : order) {
      if (std::find(unique.begin(), unique.end(), i) == unique.end()) unique.push_back(i);
    }
    indices = std::move(unique);
    double seconds = std::clamp(PlannedSeconds(indices.size(), contenders, expand_after),
                                std::max(min_seconds, options_.min_measure_s),
                                std::max(options_.max_measure_s, options_.min_measure_s));
    Say("round " + std::to_string(round) + ": " + std::to_string(indices.size()) +
        " configurations, " + Fixed(seconds, 1) + " s each");
    last_seconds_ = seconds;
    std::vector<size_t> measured;
    *complete = true;
    for (size_t i : indices) {
      if (!Fits(seconds)) {
        result_.budget_spent = true;
        *complete = false;
        break;
      }
      if (!Run(i, seconds, round, "round " + std::to_string(round))) {
        *complete = false;
        break;
      }
      measured.push_back(i);
    }
    return measured;
  }

  // The length of this round's runs: rounds grow eta times longer, and the first length is the
  // one that makes this round, the rounds planned after it (halving `contenders` until two are
  // left, references added) and the repeats of a tie fill the remaining budget.
  double PlannedSeconds(size_t runs_now, size_t contenders, bool expand_after) const {
    std::vector<double> runs = {static_cast<double>(runs_now)};
    size_t c = contenders;
    bool expand = expand_after;
    while (expand || c > 2) {
      c = expand ? Keep(c, c) * (space_.batching.size() + space_.variants.size() - 1)
                 : Keep(c + 2, c);
      expand = false;
      runs.push_back(static_cast<double>(c + 2));
    }
    runs.back() += 2.0 * (options_.max_repeats - 1);
    double weight = 0, overhead = 0, length = 1;
    for (double n : runs) {
      weight += n * length;
      overhead += n * Overhead();
      length *= options_.eta;
    }
    return (options_.budget_s - Elapsed() - overhead) / weight;
  }

  // How many of `ranked` eligible trials go on: 1/eta of them, at least two, and fewer than the
  // `contenders` of the round (the references rank too), so the rounds end.
  size_t Keep(size_t ranked, size_t contenders) const {
    size_t keep = std::max<size_t>(2, (ranked + options_.eta - 1) / options_.eta);
    if (contenders > 2) keep = std::min(keep, contenders - 1);
    return std::min(ranked, keep);
  }

  SearchResult RunHalving() {
    // Round 1: every layout with the first batching and variant.
    std::vector<size_t> pool;
    for (const auto& layout : space_.layouts) {
      size_t i = TrialOf(space_.WithDefaults(layout));
      if (std::find(pool.begin(), pool.end(), i) == pool.end()) pool.push_back(i);
    }
    bool expand = space_.batching.size() > 1 || space_.variants.size() > 1;
    bool complete = true;
    auto measured = Round(pool, 1, expand, 0, &complete);
    int round = 1;
    size_t contenders = pool.size();  // the round's trials, the references not counted
    while (complete) {
      auto ranked = Ranked(measured);
      bool expanding = round == 1 && expand;
      if (ranked.empty() || (!expanding && contenders <= 2)) break;  // the leaders are known
      size_t keep =
          expanding ? Keep(ranked.size(), ranked.size()) : Keep(ranked.size(), contenders);
      std::vector<size_t> next(ranked.begin(), ranked.begin() + keep);
      if (expanding) {
        for (size_t leader : std::vector<size_t>(next)) {
          TuneConfig base = result_.trials[leader].config;
          for (size_t b = 1; b < space_.batching.size(); ++b) {
            TuneConfig c = base;
            std::tie(c.batch_size, c.batch_delay_ms) = space_.batching[b];
            next.push_back(TrialOf(c));
          }
          for (size_t v = 1; v < space_.variants.size(); ++v) {
            TuneConfig c = base;
            space_.variants[v].ApplyTo(&c);
            next.push_back(TrialOf(c));
          }
        }
      }
      contenders = next.size();
      ++round;
      measured = Round(next, round, false, last_seconds_, &complete);
    }
    if (complete) RepeatTies(measured, round);
    // A round the budget or a stop cut short measured the references first and maybe nothing
    // else: reaching it says nothing of a trial, so it ranks as the last complete round.
    last_complete_round_ = complete ? round : round - 1;
    Decide();
    return Finish();
  }

  // Step 5: the two leaders of the last round within noise are measured again, alternately.
  void RepeatTies(const std::vector<size_t>& last_round, int round) {
    auto ranked = Ranked(last_round);
    if (ranked.size() < 2) return;
    auto within_noise = [&] {
      double a = result_.trials[ranked[0]].Rps(), b = result_.trials[ranked[1]].Rps();
      return std::abs(a - b) <= options_.noise * std::max(a, b);
    };
    if (!within_noise()) return;
    Say("leaders within " + Fixed(100 * options_.noise, 0) +
        "%: " + result_.trials[ranked[0]].config.Label() + " and " +
        result_.trials[ranked[1]].config.Label() + ", measuring both again");
    double seconds = last_seconds_;
    for (int rep = 1; rep < options_.max_repeats; ++rep) {
      for (size_t i : {ranked[0], ranked[1]}) {
        if (result_.trials[i].Deciding().size() >= static_cast<size_t>(options_.max_repeats)) {
          continue;
        }
        if (!Fits(seconds)) {
          result_.budget_spent = true;
          return;
        }
        if (!Run(i, seconds, round, "repeat")) return;
      }
    }
    ranked = Ranked(last_round);
    if (ranked.size() >= 2 && within_noise()) {
      result_.tie = true;
      // Equal throughput: the lower p99 wins.
      if (result_.trials[ranked[1]].P99() < result_.trials[ranked[0]].P99()) {
        tie_winner_ = ranked[1];
      }
    }
  }

  // The winner: among eligible trials, the furthest round first (a round cut short counts as
  // the one before it), then the throughput.
  void Decide() {
    if (tie_winner_) {
      result_.winner = tie_winner_;
      return;
    }
    std::vector<size_t> all(result_.trials.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    auto ranked = Ranked(all);
    auto reached = [&](size_t i) {
      return std::min(result_.trials[i].round, last_complete_round_);
    };
    std::stable_sort(ranked.begin(), ranked.end(),
                     [&](size_t a, size_t b) { return reached(a) > reached(b); });
    if (!ranked.empty()) result_.winner = ranked.front();
  }

  // Drops the trials never measured (the budget or a stop came first) and re-indexes.
  SearchResult Finish() {
    result_.elapsed_s = Elapsed();
    if (measurer_.Stopped()) result_.interrupted = true;
    std::vector<Trial> kept;
    std::vector<std::optional<size_t>> index(result_.trials.size());
    for (size_t i = 0; i < result_.trials.size(); ++i) {
      if (result_.trials[i].runs.empty()) continue;
      index[i] = kept.size();
      kept.push_back(std::move(result_.trials[i]));
    }
    for (auto* field : {&result_.winner, &result_.naive, &result_.plan}) {
      if (*field) *field = index[**field];
    }
    result_.trials = std::move(kept);
    return std::move(result_);
  }

  SearchResult RunExhaustive(double measure_s, const std::vector<std::string>& only) {
    exhaustive_ = true;
    auto all = space_.Product();
    if (!only.empty()) {
      std::erase_if(all, [&](const TuneConfig& c) {
        return std::find(only.begin(), only.end(), c.Label()) == only.end();
      });
    }
    Say("exhaustive: " + std::to_string(all.size()) + " configurations, " + Fixed(measure_s, 1) +
        " s each");
    size_t n = 0;
    for (const auto& config : all) {
      ++n;
      if (!Run(TrialOf(config), measure_s, 1,
               std::to_string(n) + "/" + std::to_string(all.size()))) {
        break;
      }
    }
    Decide();
    return Finish();
  }

 private:
  const TuneSpace& space_;
  Measurer& measurer_;
  const SearchOptions& options_;
  double start_;
  SearchResult result_;
  std::vector<double> overheads_;
  std::vector<std::string> reference_answers_;
  bool needs_reference_answers_ = false;
  double last_seconds_ = 0;
  std::optional<size_t> tie_winner_;
  int last_complete_round_ = std::numeric_limits<int>::max();
  bool exhaustive_ = false;  // the budget does not apply
};

}  // namespace

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string TuneConfig::Label() const {
  std::string label = std::to_string(workers) + "x" + std::to_string(threads) +
                      (pinning ? " pin" : " nopin") + (logical_cores ? " logical" : "") +
                      (front_cpus > 0 ? " front" + std::to_string(front_cpus) : "") + " b" +
                      std::to_string(batch_size);
  if (batch_size > 1) label += " d" + std::to_string(batch_delay_ms) + "ms";
  return label + (optimize ? " opt " : " noopt ") + precision + (channels_last ? " cl" : "");
}

TuneConfig TuneSpace::WithDefaults(const TuneConfig& layout) const {
  TuneConfig c = layout;
  if (!batching.empty()) std::tie(c.batch_size, c.batch_delay_ms) = batching.front();
  if (!variants.empty()) variants.front().ApplyTo(&c);
  return c;
}

std::vector<TuneConfig> TuneSpace::Product() const {
  std::vector<TuneConfig> out;
  for (const auto& layout : layouts) {
    for (const auto& [size, delay] : batching) {
      for (const auto& variant : variants) {
        TuneConfig c = layout;
        c.batch_size = size;
        c.batch_delay_ms = delay;
        variant.ApplyTo(&c);
        if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
      }
    }
  }
  return out;
}

std::vector<TuneConfig> CpuLayouts(int units, int logical_units, int logical_cpus, bool front,
                                   const std::vector<bool>& pinning, const TuneConfig& plan) {
  std::vector<TuneConfig> out;
  auto add = [&](TuneConfig c) {
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  };
  auto grid = [&](int budget, bool logical) {
    for (bool pin : pinning) {
      for (int w = 1; w <= budget; ++w) {
        for (int t = 1; w * t <= budget; ++t) {
          TuneConfig c;
          c.workers = w;
          c.threads = t;
          c.pinning = pin;
          c.logical_cores = logical;
          add(c);
          // The front keeps one unit; only pinned plans reserve it.
          if (front && pin && budget >= 2 && w * t <= budget - 1) {
            c.front_cpus = 1;
            add(c);
          }
        }
      }
    }
  };
  grid(units, false);
  if (logical_units > units) grid(logical_units, true);
  add(plan);
  add(NaiveConfig(logical_cpus));
  return out;
}

TuneConfig NaiveConfig(int logical_cpus) {
  TuneConfig naive;
  naive.workers = logical_cpus;
  naive.threads = logical_cpus;
  naive.pinning = false;
  return naive;
}

std::vector<const Measurement*> Trial::Deciding() const {
  double longest = 0;
  for (const auto& m : runs) longest = std::max(longest, m.seconds);
  std::vector<const Measurement*> out;
  for (const auto& m : runs) {
    if (m.seconds == longest) out.push_back(&m);
  }
  return out;
}

double Trial::Rps() const {
  std::vector<double> values;
  for (const auto* m : Deciding()) values.push_back(m->rps);
  return Median(values);
}

double Trial::P99() const {
  std::vector<double> values;
  for (const auto* m : Deciding()) values.push_back(m->p99_ms);
  return Median(values);
}

std::string Trial::Ineligible(const SearchOptions& options) const {
  auto deciding = Deciding();
  if (deciding.empty()) return "not measured";
  uint64_t failures = 0;
  for (const auto* m : deciding) {
    if (!m->error.empty()) return m->error;
    failures += m->failures;
  }
  if (failures > 0) return std::to_string(failures) + " failed";
  if (P99() > options.slo_p99_ms) {
    return "p99 " + Fixed(P99(), 2) + " > " + Fixed(options.slo_p99_ms, 2) + " ms";
  }
  if (config.ChangesNumerics()) {
    if (!agreement) return "no agreement check against fp32";
    if (*agreement < options.min_agreement) {
      return "agreement " + Fixed(100 * *agreement, 2) + "% < " +
             Fixed(100 * options.min_agreement, 2) + "%";
    }
  }
  return "";
}

SearchResult SuccessiveHalving(const TuneSpace& space, Measurer& measurer,
                               const SearchOptions& options) {
  return Search(space, measurer, options).RunHalving();
}

SearchResult Exhaustive(const TuneSpace& space, Measurer& measurer, const SearchOptions& options,
                        double measure_s, const std::vector<std::string>& only) {
  return Search(space, measurer, options).RunExhaustive(measure_s, only);
}

double TopOneAgreement(const std::vector<std::string>& reference,
                       const std::vector<std::string>& candidate) {
  size_t n = std::min(reference.size(), candidate.size());
  if (n == 0) return 0;
  size_t same = 0;
  for (size_t i = 0; i < n; ++i) {
    auto a = ReadTopOne(reference[i]), b = ReadTopOne(candidate[i]);
    if (!a || !b) continue;
    if (a->score && b->score) {
      same += std::abs(*a->score - *b->score) <= 0.01 * std::max(1.0, std::abs(*a->score));
    } else if (!a->score && !b->score) {
      same += a->label == b->label;
    }
  }
  return static_cast<double>(same) /
         static_cast<double>(std::max(reference.size(), candidate.size()));
}

}  // namespace sg::serve
