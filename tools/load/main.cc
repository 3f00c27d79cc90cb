// sg-load: replays a corpus (files, the Fashion-MNIST test set, or a pair log's requests) against
// one HTTP endpoint in closed or open loop, then prints Locust-style tables and writes Locust's
// four CSV files (the history one as the run goes). Exit codes: 0 every request succeeded, 1 some
// failed, 2 bad flags, unreadable corpus or unreachable endpoint.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/cli.h"
#include "common/logging.h"
#include "common/strings.h"
#include "tools/load/corpus.h"
#include "tools/load/load_runner.h"
#include "tools/load/load_stats.h"

namespace {

using namespace sg::load;

constexpr int kUsageError = 2;

struct Flags {
  std::string url;
  std::string corpus_dir, fashion_mnist, pair_log;
  size_t limit = 0;
  bool shuffle = false;
  uint64_t seed = 1;
  std::string method = "POST";
  std::string content_type;
  std::vector<std::string> headers;
  std::string label_header;
  int users = 1;
  double rate = 0;
  std::string arrival = "constant";
  int max_connections = 64;
  uint64_t requests = 0;
  double duration_s = 0;
  double timeout_s = 10;
  std::string csv_prefix;
  bool csv_full_history = false;
  bool no_progress = false;
  // render subcommand
  std::string render_out;
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "sg-load: %s\n", message.c_str());
  return kUsageError;
}

// Writes `content` to `path`; false with `error` ("PATH: reason") when it cannot.
bool WriteFile(const std::string& path, const std::string& content, std::string* error) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.flush();
  if (!out) *error = path + ": " + std::strerror(errno);
  return static_cast<bool>(out);
}

int Render(const Flags& flags) {
  std::string error;
  auto count = RenderFashionMnist(flags.fashion_mnist, flags.limit, flags.render_out, &error);
  if (!count) return Fail(error);
  spdlog::info("wrote {} PNG files to {} (named NNNNN__<label>.png)", *count, flags.render_out);
  return 0;
}

int Run(const Flags& flags, const CLI::App& app) {
  int sources = !flags.corpus_dir.empty() + !flags.fashion_mnist.empty() + !flags.pair_log.empty();
  if (sources != 1) {
    return Fail("give exactly one of --corpus DIR, --fashion-mnist PATH, --pair-log FILE");
  }
  if (flags.url.empty()) return Fail("--url is required");
  std::string error;
  LoadOptions options;
  auto url = ParseHttpUrl(flags.url, &error);
  if (!url) return Fail("--url: " + error);
  options.url = *url;
  options.method = flags.method;
  options.content_type = flags.content_type;
  options.label_header = flags.label_header;
  for (const auto& header : flags.headers) {
    size_t colon = header.find(':');
    if (colon == std::string::npos || colon == 0) {
      return Fail("--header must be \"Name: value\" (got \"" + header + "\")");
    }
    options.headers.emplace_back(std::string(sg::Trim(header.substr(0, colon))),
                                 std::string(sg::Trim(header.substr(colon + 1))));
  }
  if (app.count("--rate") > 0) {
    if (app.count("--users") > 0)
      return Fail("--users (closed loop) and --rate (open loop) exclude each other");
    options.rate = flags.rate;
    options.arrival =
        flags.arrival == "poisson" ? ArrivalProcess::kPoisson : ArrivalProcess::kConstant;
  }
  options.users = flags.users;
  options.max_connections = flags.max_connections;
  if (flags.requests > 0) options.requests = flags.requests;
  if (flags.duration_s > 0) {
    options.duration = std::chrono::nanoseconds(static_cast<int64_t>(flags.duration_s * 1e9));
  }
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(flags.timeout_s * 1000));
  options.shuffle = flags.shuffle;
  options.seed = flags.seed;

  std::optional<std::vector<CorpusItem>> items;
  if (!flags.corpus_dir.empty()) {
    items = LoadDirectoryCorpus(flags.corpus_dir, &error);
  } else if (!flags.fashion_mnist.empty()) {
    items = LoadFashionMnistCorpus(flags.fashion_mnist, flags.limit, &error);
  } else {
    size_t skipped = 0;
    items = LoadPairLogCorpus(flags.pair_log, flags.label_header, &skipped, &error);
    if (items && skipped > 0) {
      spdlog::warn("{}: skipped {} records without a whole request body", flags.pair_log, skipped);
    }
  }
  if (!items) return Fail(error);
  if (flags.limit > 0 && items->size() > flags.limit) items->resize(flags.limit);
  size_t labelled = 0;
  for (const auto& item : *items) labelled += item.label.has_value();
  spdlog::info("corpus: {} items ({} labelled){}", items->size(), labelled,
               options.label_header.empty() || labelled == 0
                   ? ""
                   : "; labels sent in " + options.label_header);

  if (auto why = CheckReachable(options.url, std::chrono::milliseconds(3000))) {
    return Fail(*why + " (--url " + flags.url + ")");
  }

  // Locust's PREFIX_stats_history.csv grows during the run: a row (or, with --csv-full-history,
  // a row per endpoint and one Aggregated row) each second, then one after the last request.
  std::ofstream history;
  std::string history_path = flags.csv_prefix + "_stats_history.csv";
  if (!flags.csv_prefix.empty()) {
    history.open(history_path, std::ios::binary | std::ios::trunc);
    history << LocustStatsHistoryHeader() << std::flush;
    if (!history) return Fail("--csv: cannot write " + history_path + ": " + std::strerror(errno));
    options.every_second = [&history, &flags](const LoadStats& stats, int64_t unix_s, int users) {
      history << LocustStatsHistoryRows(stats, unix_s, users, flags.csv_full_history) << std::flush;
    };
  }

  bool tty = isatty(STDERR_FILENO);
  if (!flags.no_progress) {
    options.progress = [tty](const std::string& line) {
      if (tty) {
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
      } else {
        std::fprintf(stderr, "%s\n", line.c_str());
      }
      std::fflush(stderr);
    };
  }
  if (options.rate) {
    spdlog::info("open loop: {} req/s ({}), up to {} connections, {} {}", *options.rate,
                 flags.arrival, options.max_connections, options.method, flags.url);
  } else {
    spdlog::info("closed loop: {} users, {} {}", options.users, options.method, flags.url);
  }
  LoadResult result = RunLoad(options, *items);
  if (tty && !flags.no_progress) std::fprintf(stderr, "\n");

  std::printf("\n%s\n%s", FormatRequestTable(result.stats, result.elapsed_s).c_str(),
              FormatPercentileTable(result.stats).c_str());
  std::fflush(stdout);
  spdlog::info("{} requests, {} failed, in {:.2f} s ({:.1f} req/s); {} connections opened{}{}",
               result.stats.requests(), result.stats.failures(), result.elapsed_s,
               result.elapsed_s > 0 ? result.stats.requests() / result.elapsed_s : 0.0,
               result.connections_opened,
               options.rate ? "; " + std::to_string(result.late_sends) +
                                  " sent over 1 ms after their due time"
                            : "",
               result.interrupted ? "; interrupted" : "");
  for (const auto& [key, count] : result.stats.errors()) {
    spdlog::warn("{} x {}", count, std::get<2>(key));
  }
  if (!flags.csv_prefix.empty()) {
    const std::string& prefix = flags.csv_prefix;
    if (!history) return Fail("cannot write " + history_path + ": " + std::strerror(errno));
    if (!WriteFile(prefix + "_stats.csv", LocustStatsCsv(result.stats, result.elapsed_s), &error) ||
        !WriteFile(prefix + "_failures.csv", LocustFailuresCsv(result.stats), &error) ||
        !WriteFile(prefix + "_exceptions.csv", LocustExceptionsCsv(), &error)) {
      return Fail("cannot write " + error);
    }
    spdlog::info("wrote {}_stats.csv, _stats_history.csv, _failures.csv and _exceptions.csv",
                 prefix);
  }
  return result.stats.failures() > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  sg::LogOptions log_options;
  CLI::App app{
      "sg-load: replay a corpus against an HTTP endpoint (closed or open loop) and report "
      "Locust-style statistics.\nExit codes: 0 all requests succeeded, 1 some failed, 2 bad "
      "flags / corpus / unreachable URL."};
  sg::AddVersionFlag(app, "sg-load");
  app.add_option("--url", flags.url,
                 "Target, http://HOST[:PORT][/PATH][?QUERY] (HOST: a name, IPv4 or [IPv6])");
  app.add_option("--corpus", flags.corpus_dir,
                 "Directory of request bodies, one per file (label from NAME__LABEL.ext)");
  app.add_option("--fashion-mnist", flags.fashion_mnist,
                 "Fashion-MNIST test set (directory or images IDX file), sent as PNG");
  app.add_option("--pair-log", flags.pair_log, "Replay the captured requests of a pair log");
  app.add_option("--limit", flags.limit, "Use only the first N corpus items (0: all)");
  app.add_flag("--shuffle", flags.shuffle, "Visit the corpus in a seeded random order");
  app.add_option("--seed", flags.seed, "Seed for --shuffle and Poisson arrivals")
      ->capture_default_str();
  app.add_option("-X,--method", flags.method, "HTTP method")->capture_default_str();
  app.add_option("--content-type", flags.content_type,
                 "Content-Type for every request (default: from each item)");
  app.add_option("-H,--header", flags.headers, "Extra header \"Name: value\" (repeatable)");
  app.add_option("--label-header", flags.label_header,
                 "Send each item's true label in this header, e.g. x-true-label (default: off)");
  app.add_option("-u,--users", flags.users, "Closed loop: concurrent users")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--rate", flags.rate, "Open loop: requests per second")
      ->check(CLI::PositiveNumber);
  app.add_option("--arrival", flags.arrival, "Open loop arrivals: constant or poisson")
      ->check(CLI::IsMember({"constant", "poisson"}))
      ->capture_default_str();
  app.add_option("--max-connections", flags.max_connections, "Open loop: connection pool bound")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("-n,--requests", flags.requests,
                 "Stop after N requests (default: one pass over the corpus unless --duration)")
      ->check(CLI::PositiveNumber);
  app.add_option("-d,--duration", flags.duration_s, "Stop after this many seconds")
      ->check(CLI::PositiveNumber);
  app.add_option("--timeout", flags.timeout_s, "Per-request timeout, seconds, connect included")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  CLI::Option* csv = app.add_option(
      "--csv", flags.csv_prefix,
      "Write Locust's PREFIX_stats.csv, PREFIX_stats_history.csv (a row each second), "
      "PREFIX_failures.csv and PREFIX_exceptions.csv");
  app.add_flag("--csv-full-history", flags.csv_full_history,
               "Also a history row per endpoint each second (as Locust's --csv-full-history)")
      ->needs(csv);
  app.add_flag("--no-progress", flags.no_progress, "No live progress line on stderr");
  sg::AddLoggingFlags(app, log_options);

  CLI::App* render = app.add_subcommand(
      "render", "Write the Fashion-MNIST test set as PNG files named NNNNN__<label>.png");
  render
      ->add_option("--fashion-mnist", flags.fashion_mnist,
                   "Directory or images IDX file (default /usr/share/datasets/fashion-mnist)")
      ->capture_default_str();
  render->add_option("--out", flags.render_out, "Output directory (created)")->required();
  render->add_option("--limit", flags.limit, "Only the first N images (0: all)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kUsageError;
  }
  if (!sg::SetUpLogging(log_options, "sg-load")) return Fail("bad --log-level");
  if (render->parsed()) {
    if (flags.fashion_mnist.empty()) flags.fashion_mnist = "/usr/share/datasets/fashion-mnist";
    return Render(flags);
  }
  return Run(flags, app);
}
