// sg-load end to end: the real binary against a real nginx (and, for open-loop queueing, a slow
// server in this process), over real sockets on 127.0.0.1.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "common/pair_record.h"
#include "common/strings.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"
#include "tools/load/corpus.h"
#include "tools/load/idx_file.h"
#include "tools/load/png_codec.h"

namespace sg::load {
namespace {

namespace fs = std::filesystem;
const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

using sg::testing::ReadFile;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  for (auto& line : Split(text, '\n')) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

using RunResult = testing::ToolResult;

// Runs build/bin/sg-load to completion.
RunResult RunSgLoad(const std::vector<std::string>& args, const testing::TempDir& dir) {
  return testing::RunTool("sg-load", args, dir.path());
}

// A real nginx: /ok answers 200 and logs "method uri label content-type" per request, /fail
// answers 503.
class Nginx {
 public:
  Nginx() : port_(testing::FreePort()) {
    std::string tmp = dir_.path().string();
    std::string port = std::to_string(port_);
    auto conf = dir_.Write(
        "nginx.conf",
        "daemon off; master_process off; pid " + tmp +
            "/nginx.pid;\n"
            "error_log stderr warn; events {}\n"
            "http { access_log off; client_body_temp_path " +
            tmp +
            ";\n"
            "  proxy_temp_path " +
            tmp + "; fastcgi_temp_path " + tmp +
            ";\n"
            "  uwsgi_temp_path " +
            tmp + "; scgi_temp_path " + tmp +
            ";\n"
            "  log_format probe '$request_method $uri [$http_x_true_label] $content_type';\n"
            "  server { listen 127.0.0.1:" +
            port +
            ";\n"
            "    location /ok { access_log " +
            tmp +
            "/access.log probe;\n"
            "                   return 200 '{\"ok\": true}'; }\n"
            "    location /fail { return 503 'busy'; } } }\n");
    process_.emplace("/usr/sbin/nginx",
                     std::vector<std::string>{"-p", tmp, "-c", conf.string(), "-e", "stderr"});
  }
  bool Ready(std::string* why) {
    return process_->WaitReady(port_, "/ok", std::chrono::seconds(10), why);
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // Lines logged for /ok, minus the readiness probe (which has no content type), once there
  // are `expected` of them or 10 s passed: nginx writes a line after sending its response, so
  // the client may have its answer before the line is there.
  std::vector<std::string> AccessLog(size_t expected) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      std::vector<std::string> lines;
      for (auto& line : Lines(ReadFile(dir_.path() / "access.log"))) {
        if (line.rfind("POST", 0) == 0) lines.push_back(line);
      }
      if (lines.size() >= expected || std::chrono::steady_clock::now() > deadline) return lines;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  testing::TempDir dir_;
  int port_;
  std::optional<testing::ChildProcess> process_;
};

// Field `column` (0-based) of the CSV row whose Name is `name`.
std::string CsvField(const std::string& csv, const std::string& name, size_t column) {
  for (const auto& line : Lines(csv)) {
    auto fields = Split(line, ',');
    if (fields.size() > column && fields[1] == name) return fields[column];
  }
  return "<no row " + name + ">";
}

TEST(SgLoadTest, ClosedLoopSendsExactlyTheRequestedCountWithLabels) {
  Nginx nginx;
  std::string why;
  ASSERT_TRUE(nginx.Ready(&why)) << why;
  testing::TempDir dir;
  std::string prefix = (dir.path() / "run").string();
  auto run = RunSgLoad(
      {"--url", nginx.Url("/ok"), "--fashion-mnist", kFashionMnist, "--limit", "40", "-n", "300",
       "-u", "4", "--label-header", "x-true-label", "--csv", prefix, "--no-progress"},
      dir);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto log = nginx.AccessLog(300);
  EXPECT_EQ(log.size(), 300u);
  // 300 requests cycle over the 40 images: each image's label is sent 7 or 8 times.
  std::string error;
  auto items = LoadFashionMnistCorpus(kFashionMnist, 40, &error);
  ASSERT_TRUE(items) << error;
  std::map<std::string, int> expected, seen;
  for (int i = 0; i < 300; ++i) ++expected["POST /ok [" + *(*items)[i % 40].label + "] image/png"];
  for (const auto& line : log) ++seen[line];
  EXPECT_EQ(seen, expected);
  std::string csv = ReadFile(prefix + "_stats.csv");
  EXPECT_EQ(CsvField(csv, "/ok", 0), "POST");
  EXPECT_EQ(CsvField(csv, "/ok", 2), "300");
  EXPECT_EQ(CsvField(csv, "/ok", 3), "0");
  EXPECT_EQ(CsvField(csv, "Aggregated", 2), "300");
  EXPECT_EQ(CsvField(csv, "Aggregated", 8), "12.0");  // nginx's body: {"ok": true}
  EXPECT_EQ(ReadFile(prefix + "_failures.csv"), "Method,Name,Error,Occurrences\n");
  EXPECT_NE(run.out.find("Aggregated"), std::string::npos) << run.out;
  EXPECT_NE(run.err.find("4 connections opened"), std::string::npos) << run.err;  // keep-alive
}

TEST(SgLoadTest, LabelHeaderIsOffByDefaultAndContentTypeCanBeForced) {
  Nginx nginx;
  std::string why;
  ASSERT_TRUE(nginx.Ready(&why)) << why;
  testing::TempDir dir;
  auto run = RunSgLoad({"--url", nginx.Url("/ok"), "--fashion-mnist", kFashionMnist, "--limit", "5",
                        "--content-type", "application/x-test", "--no-progress"},
                       dir);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto log = nginx.AccessLog(5);
  ASSERT_EQ(log.size(), 5u);  // default: one pass over the corpus
  for (const auto& line : log) EXPECT_EQ(line, "POST /ok [-] application/x-test");
}

TEST(SgLoadTest, FailuresAreCountedAndExitCodeIsOne) {
  Nginx nginx;
  std::string why;
  ASSERT_TRUE(nginx.Ready(&why)) << why;
  testing::TempDir dir;
  std::string prefix = (dir.path() / "fail").string();
  auto run = RunSgLoad({"--url", nginx.Url("/fail"), "--fashion-mnist", kFashionMnist, "--limit",
                        "10", "-n", "25", "--csv", prefix, "--no-progress"},
                       dir);
  EXPECT_EQ(run.exit_code, 1) << run.err;
  std::string csv = ReadFile(prefix + "_stats.csv");
  EXPECT_EQ(CsvField(csv, "/fail", 2), "25");
  EXPECT_EQ(CsvField(csv, "/fail", 3), "25");
  // Locust's text for it (requests' HTTPError, with nginx's reason phrase and the URL).
  EXPECT_EQ(ReadFile(prefix + "_failures.csv"),
            "Method,Name,Error,Occurrences\nPOST,/fail,HTTPError('503 Server Error: Service "
            "Temporarily Unavailable for url: " +
                nginx.Url("/fail") + "'),25\n");
  EXPECT_EQ(ReadFile(prefix + "_exceptions.csv"), "Count,Message,Traceback,Nodes\n");
}

TEST(SgLoadTest, OpenLoopKeepsTheRate) {
  Nginx nginx;
  std::string why;
  ASSERT_TRUE(nginx.Ready(&why)) << why;
  testing::TempDir dir;
  std::string prefix = (dir.path() / "open").string();
  auto start = std::chrono::steady_clock::now();
  auto run = RunSgLoad({"--url", nginx.Url("/ok"), "--fashion-mnist", kFashionMnist, "--limit",
                        "20", "--rate", "100", "--duration", "2", "--csv", prefix},
                       dir);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // Due times 0, 10 ms, ..., 1990 ms: exactly 200 requests, spread over ~2 s.
  EXPECT_EQ(nginx.AccessLog(200).size(), 200u);
  std::string csv = ReadFile(prefix + "_stats.csv");
  EXPECT_EQ(CsvField(csv, "/ok", 2), "200");
  double rate = std::stod(CsvField(csv, "/ok", 9));
  // Never faster than the schedule (a closed loop against nginx would be far faster); slower
  // only by how late a loaded machine runs the requests, bounded generously.
  EXPECT_GT(rate, 60.0) << csv;
  EXPECT_LT(rate, 101.0) << csv;
  EXPECT_GT(wall, 1.9);
  // The progress line appears about once a second (stderr is not a terminal here).
  EXPECT_NE(run.err.find("s  sent "), std::string::npos) << run.err;
  // The history has a row at the start, each second, and one after the last request, whose
  // totals are the run's.
  auto history = Lines(ReadFile(prefix + "_stats_history.csv"));
  ASSERT_GE(history.size(), 4u);
  EXPECT_EQ(history[0].substr(0, 26), "Timestamp,User Count,Type,");
  for (size_t i = 1; i < history.size(); ++i) {
    EXPECT_EQ(Split(history[i], ',')[3], "Aggregated") << history[i];
  }
  EXPECT_EQ(Split(history.back(), ',')[17], "200") << history.back();
}

// A server on 127.0.0.1 (or ::1) that answers each request on a connection after `delay`, one
// at a time, and keeps each request's head (request line and headers).
class SlowServer {
 public:
  explicit SlowServer(std::chrono::milliseconds delay, bool ipv6 = false) : delay_(delay) {
    listener_ = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage storage{};
    socklen_t length = 0;
    if (ipv6) {
      auto* addr = reinterpret_cast<sockaddr_in6*>(&storage);
      addr->sin6_family = AF_INET6;
      addr->sin6_addr = in6addr_loopback;
      length = sizeof *addr;
    } else {
      auto* addr = reinterpret_cast<sockaddr_in*>(&storage);
      addr->sin_family = AF_INET;
      addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      length = sizeof *addr;
    }
    auto* addr = reinterpret_cast<sockaddr*>(&storage);
    listening_ = bind(listener_, addr, length) == 0 && listen(listener_, 16) == 0 &&
                 getsockname(listener_, addr, &length) == 0;
    port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~SlowServer() {
    stop_ = true;
    thread_.join();
    close(listener_);
  }
  bool listening() const { return listening_; }
  int port() const { return port_; }
  int answered() const { return answered_; }
  std::vector<std::string> heads() const {
    std::lock_guard lock(mutex_);
    return heads_;
  }

 private:
  // Handles connections one after another (sg-load uses one here).
  void Serve() {
    while (!stop_) {
      pollfd listen_poll{listener_, POLLIN, 0};
      if (poll(&listen_poll, 1, 50) <= 0) continue;
      int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      std::string buffer;
      while (!stop_) {
        size_t end = buffer.find("\r\n\r\n");
        if (end != std::string::npos) {
          size_t body = 0;
          size_t at = ToLowerAscii(buffer.substr(0, end)).find("content-length:");
          if (at != std::string::npos) body = std::stoul(buffer.substr(at + 15));
          if (buffer.size() >= end + 4 + body) {
            {
              std::lock_guard lock(mutex_);
              heads_.push_back(buffer.substr(0, end));
            }
            buffer.erase(0, end + 4 + body);
            std::this_thread::sleep_for(delay_);
            std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if (write(fd, reply.data(), reply.size()) < 0) break;
            ++answered_;
            continue;
          }
        }
        pollfd read_poll{fd, POLLIN, 0};
        if (poll(&read_poll, 1, 50) <= 0) continue;
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n <= 0) break;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      close(fd);
    }
  }

  std::chrono::milliseconds delay_;
  int listener_ = -1;
  bool listening_ = false;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::string> heads_;  // guarded by mutex_
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

// 40 requests due over 1 s (40/s) to a server that takes 50 ms each (20/s) on one connection:
// the queue grows, and latency counts from each request's due time, so the late requests show
// about 1 s of waiting. A tool that measured from the actual send would report ~50 ms for all
// (coordinated omission).
TEST(SgLoadTest, OpenLoopLatencyIncludesQueueingBehindASlowServer) {
  SlowServer server(std::chrono::milliseconds(50));
  testing::TempDir dir;
  std::string prefix = (dir.path() / "slow").string();
  auto run = RunSgLoad({"--url", "http://127.0.0.1:" + std::to_string(server.port()) + "/slow",
                        "--fashion-mnist", kFashionMnist, "--limit", "10", "--rate", "40", "-n",
                        "40", "--max-connections", "1", "--csv", prefix, "--no-progress"},
                       dir);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(server.answered(), 40);
  std::string csv = ReadFile(prefix + "_stats.csv");
  double min_ms = std::stod(CsvField(csv, "/slow", 6));
  double median_ms = std::stod(CsvField(csv, "/slow", 4));
  double max_ms = std::stod(CsvField(csv, "/slow", 7));
  EXPECT_GE(min_ms, 50.0) << csv;
  // Request k completes at ~(k+1) * 50 ms and was due at k * 25 ms: latency ~ 50 + 25k ms.
  EXPECT_GT(median_ms, 400.0) << csv;
  EXPECT_GT(max_ms, 900.0) << csv;
  EXPECT_NE(run.err.find("1 connections opened"), std::string::npos) << run.err;
}

// The request line and Host header received for `url`, as curl sends them: IPv6 literals keep
// their brackets in Host, the scheme is case-insensitive, path and query go as written.
TEST(SgLoadTest, HostHeaderAndTargetAreSentAsCurlSendsThem) {
  struct Case {
    bool ipv6;
    std::string url_head;  // before the port
    std::string path;
    std::string host_head;
  };
  for (const Case& c : {Case{false, "http://127.0.0.1:", "/v4/a%20b?x=1&y=%2F", "127.0.0.1:"},
                        Case{true, "http://[::1]:", "/v6?q", "[::1]:"},
                        Case{true, "HTTP://[::1]:", "/upper", "[::1]:"}}) {
    SlowServer server(std::chrono::milliseconds(0), c.ipv6);
    ASSERT_TRUE(server.listening()) << (c.ipv6 ? "no ::1 here" : "no 127.0.0.1 here");
    std::string port = std::to_string(server.port());
    testing::TempDir dir;
    auto body = dir.Write("body__x.bin", "b");
    auto run = RunSgLoad({"--url", c.url_head + port + c.path, "--corpus", dir.path().string(),
                          "-n", "2", "--no-progress"},
                         dir);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    auto heads = server.heads();
    ASSERT_EQ(heads.size(), 2u);
    for (const auto& head : heads) {
      auto lines = Split(head, '\n');
      EXPECT_EQ(lines[0], "POST " + c.path + " HTTP/1.1\r") << head;
      EXPECT_NE(head.find("\nHost: " + c.host_head + port + "\r"), std::string::npos) << head;
    }
  }
}

TEST(SgLoadTest, ReplaysAPairLogsRequests) {
  Nginx nginx;
  std::string why;
  ASSERT_TRUE(nginx.Ready(&why)) << why;
  testing::TempDir dir;
  std::string log;
  for (int i = 0; i < 3; ++i) {
    PairRecord record;
    record.id = "id" + std::to_string(i);
    record.request.method = "POST";
    record.request.target = "/recorded";
    record.request.body = "body" + std::to_string(i);
    record.request.headers = {{"content-type", "image/png"},
                              {"x-true-label", i == 1 ? "T-shirt/top" : "Bag"}};
    record.primary.outcome = record.shadow.outcome = "ok";
    log += EncodePairLogLine(record) + "\n";
  }
  auto path = dir.Write("pairs.jsonl", log);
  auto run = RunSgLoad({"--url", nginx.Url("/ok"), "--pair-log", path.string(), "--label-header",
                        "x-true-label", "--no-progress"},
                       dir);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(nginx.AccessLog(3), (std::vector<std::string>{"POST /ok [Bag] image/png",
                                                          "POST /ok [T-shirt/top] image/png",
                                                          "POST /ok [Bag] image/png"}));
}

TEST(SgLoadTest, BadFlagsAndUnreachableUrlExitWithTwo) {
  testing::TempDir dir;
  int closed_port = testing::FreePort();
  auto unreachable = RunSgLoad({"--url", "http://127.0.0.1:" + std::to_string(closed_port) + "/",
                                "--fashion-mnist", kFashionMnist, "--limit", "1"},
                               dir);
  EXPECT_EQ(unreachable.exit_code, 2);
  EXPECT_NE(unreachable.err.find("cannot connect to 127.0.0.1:"), std::string::npos)
      << unreachable.err;
  EXPECT_EQ(RunSgLoad({"--no-such-flag"}, dir).exit_code, 2);
  EXPECT_EQ(RunSgLoad({"--url", "http://127.0.0.1:1/"}, dir).exit_code, 2);  // no corpus
  auto both = RunSgLoad({"--url", "http://127.0.0.1:1/", "--corpus", dir.path().string(), "--users",
                         "2", "--rate", "5"},
                        dir);
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("exclude each other"), std::string::npos) << both.err;
  auto https = RunSgLoad({"--url", "https://x/", "--corpus", dir.path().string()}, dir);
  EXPECT_EQ(https.exit_code, 2);
  EXPECT_NE(https.err.find("--url: URL must start with http://: sg-load speaks plain HTTP"),
            std::string::npos)
      << https.err;
  auto user = RunSgLoad({"--url", "http://u:p@127.0.0.1:1/", "--corpus", dir.path().string()}, dir);
  EXPECT_EQ(user.exit_code, 2);
  EXPECT_NE(user.err.find("--url: URL user info (user:password@) is not supported"),
            std::string::npos)
      << user.err;
  auto history = RunSgLoad(
      {"--url", "http://127.0.0.1:1/", "--corpus", dir.path().string(), "--csv-full-history"}, dir);
  EXPECT_EQ(history.exit_code, 2);
  EXPECT_NE(history.err.find("--csv-full-history requires --csv"), std::string::npos)
      << history.err;
  EXPECT_EQ(
      RunSgLoad({"--url", "http://127.0.0.1:1/", "--rate", "0", "--corpus", "x"}, dir).exit_code,
      2);
}

// `sg-load render` writes PNGs whose names carry the label and whose pixels are the IDX pixels.
TEST(SgLoadTest, RenderWritesLabelledPngsThatDecodeToIdxPixels) {
  testing::TempDir dir;
  fs::path out = dir.path() / "png";
  auto run = RunSgLoad(
      {"render", "--fashion-mnist", kFashionMnist, "--out", out.string(), "--limit", "30"}, dir);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::string error;
  auto images = ReadIdxFile(std::string(kFashionMnist) + "/t10k-images-idx3-ubyte.gz", &error);
  auto labels = ReadIdxFile(std::string(kFashionMnist) + "/t10k-labels-idx1-ubyte.gz", &error);
  ASSERT_TRUE(images && labels) << error;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(out)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 30u);
  for (size_t i = 0; i < files.size(); ++i) {
    std::string name = files[i].filename().string();
    EXPECT_EQ(name.substr(0, 5), (i < 10 ? "0000" : "000") + std::to_string(i));
    EXPECT_EQ(LabelFromFileName(name), FashionMnistClasses()[labels->data[i]]) << name;
    auto decoded = DecodePngToGrayForTest(ReadFile(files[i]), &error);
    ASSERT_TRUE(decoded) << name << ": " << error;
    std::vector<uint8_t> expected(images->data.begin() + i * 784,
                                  images->data.begin() + (i + 1) * 784);
    EXPECT_EQ(decoded->pixels, expected) << name;
  }
  // The rendered directory is itself a corpus whose labels are read back from the names.
  auto corpus = LoadDirectoryCorpus(out.string(), &error);
  ASSERT_TRUE(corpus) << error;
  EXPECT_EQ((*corpus)[0].label, "Ankle boot");
}

}  // namespace
}  // namespace sg::load
