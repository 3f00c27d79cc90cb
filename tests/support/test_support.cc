#include "tests/support/test_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/strings.h"

namespace sg::testing {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Connects to 127.0.0.1:port; -1 on failure.
int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool SendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the peer closes or the deadline passes; false on timeout.
bool ReadUntilClose(int fd, Clock::time_point deadline, std::string& out) {
  char buffer[16384];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;  // closed (or reset: whatever arrived is the answer)
    out.append(buffer, static_cast<size_t>(n));
  }
}

// Decodes a chunked body; nullopt when the framing is invalid or incomplete.
std::optional<std::string> DecodeChunked(std::string_view data) {
  std::string body;
  while (true) {
    size_t eol = data.find("\r\n");
    if (eol == std::string_view::npos) return std::nullopt;
    std::string size_text(data.substr(0, data.find_first_of(";\r")));
    size_t size = 0;
    try {
      size = std::stoul(size_text, nullptr, 16);
    } catch (...) {
      return std::nullopt;
    }
    data.remove_prefix(eol + 2);
    if (size == 0) return body;
    if (data.size() < size + 2) return std::nullopt;
    body.append(data.substr(0, size));
    data.remove_prefix(size + 2);
  }
}

// A response head (the status line and the headers, without the blank line) into `response`;
// headers named again are joined with ", ". Empty, or why the head is not one.
std::string ParseResponseHead(const std::string& text, HttpResponse* response) {
  std::istringstream head(text);
  std::string line;
  std::getline(head, line);
  if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return "bad status line: " + line;
  response->status = std::stoi(line.substr(9, 3));
  response->reason = std::string(Trim(line.size() > 13 ? line.substr(13) : ""));
  if (!response->reason.empty() && response->reason.back() == '\r') response->reason.pop_back();
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = ToLowerAscii(line.substr(0, colon));
    std::string value(Trim(line.substr(colon + 1)));
    auto& slot = response->headers[name];
    slot = slot.empty() ? value : slot + ", " + value;
  }
  return {};
}

}  // namespace

std::filesystem::path BinDir() {
  return SG_BIN_DIR;
}
std::filesystem::path SourceDir() {
  return SG_SOURCE_DIR;
}

std::string ModelFixture(const std::string& name) {
  return (SourceDir() / "tests/fixtures/models" / name).string();
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int64_t ProcStatusKiB(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 &&
        line[field.size()] == ':') {
      return std::stoll(line.substr(field.size() + 1));
    }
  }
  return -1;
}

namespace {

// The first port of the kernel's ephemeral range (the local ports it picks for outgoing
// connections).
int FirstEphemeralPort() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return in >> low ? low : 32768;
}

bool CanBind(int port) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = Loopback(port);
  return bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

}  // namespace

int FreePort() {
  // Below the ephemeral range: a port bound to 0 and released can be handed to the very next
  // outgoing connection (one of the test's own, or nginx's to an upstream) before the server
  // under test binds it; a port below the range is never picked that way. Each process walks
  // the range from its own random point, so concurrent test processes rarely try the same port,
  // and the bind check skips the ones in use.
  static constexpr int kFirst = 10000;
  static const int last = FirstEphemeralPort() - 1;
  if (last - kFirst < 1000) {  // an unusual range: fall back to one the kernel picks
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr = Loopback(0);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
    socklen_t len = sizeof addr;
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }
  const int span = last - kFirst + 1;
  static std::atomic<unsigned> next{std::random_device{}() % static_cast<unsigned>(span)};
  for (int tries = 0; tries < span; ++tries) {
    int port = kFirst + static_cast<int>(next.fetch_add(1, std::memory_order_relaxed) %
                                         static_cast<unsigned>(span));
    if (CanBind(port)) return port;
  }
  return -1;
}

bool WaitForPort(int port, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int fd = Connect(port);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("sg-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(rd() % 100000));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path TempDir::Write(const std::string& name, const std::string& content) const {
  auto file = path_ / name;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << content;
  return file;
}

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(ToLowerAscii(name));
  return it == headers.end() ? "" : it->second;
}

std::optional<HttpResponse> Http(int port, const HttpRequestSpec& spec, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<HttpResponse> {
    if (error) *error = why;
    return std::nullopt;
  };
  Fd fd(Connect(port));
  if (fd.get() < 0) return fail("connect to port " + std::to_string(port) + " failed");
  std::string request = spec.method + " " + spec.target + " HTTP/1.1\r\n";
  bool has_host = false, has_length = false;
  for (const auto& [k, v] : spec.headers) {
    request += k + ": " + v + "\r\n";
    has_host = has_host || ToLowerAscii(k) == "host";
    has_length =
        has_length || ToLowerAscii(k) == "content-length" || ToLowerAscii(k) == "transfer-encoding";
  }
  if (!has_host) request += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  if (!has_length && (!spec.body.empty() || spec.method == "POST" || spec.method == "PUT")) {
    request += "Content-Length: " + std::to_string(spec.body.size()) + "\r\n";
  }
  request += "Connection: close\r\n\r\n" + spec.body;
  if (!SendAll(fd.get(), request)) return fail("send failed");

  std::string raw;
  if (!ReadUntilClose(fd.get(), Clock::now() + spec.timeout, raw)) {
    return fail("timed out after " + std::to_string(spec.timeout.count()) + " ms");
  }
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return fail("no complete response head: " + raw);
  HttpResponse response;
  if (auto why = ParseResponseHead(raw.substr(0, head_end), &response); !why.empty()) {
    return fail(why);
  }
  std::string_view rest(raw);
  rest.remove_prefix(head_end + 4);
  if (ToLowerAscii(response.Header("transfer-encoding")).find("chunked") != std::string::npos) {
    auto body = DecodeChunked(rest);
    if (!body) return fail("bad chunked body");
    response.body = std::move(*body);
  } else if (!response.Header("content-length").empty()) {
    size_t length = std::stoul(response.Header("content-length"));
    if (spec.method != "HEAD" && rest.size() < length) return fail("truncated body");
    response.body = std::string(rest.substr(0, spec.method == "HEAD" ? 0 : length));
  } else {
    response.body = std::string(rest);
  }
  return response;
}

std::optional<HttpResponse> HttpGet(int port, const std::string& target) {
  HttpRequestSpec spec;
  spec.target = target;
  return Http(port, spec);
}

std::string RawExchange(int port, const std::string& bytes, std::chrono::milliseconds timeout) {
  Fd fd(Connect(port));
  if (fd.get() < 0) return "";
  SendAll(fd.get(), bytes);
  std::string out;
  ReadUntilClose(fd.get(), Clock::now() + timeout, out);
  return out;
}

HttpConnection::HttpConnection(int port) : port_(port), fd_(Connect(port)) {}

HttpConnection::~HttpConnection() {
  if (fd_ >= 0) close(fd_);
}

std::optional<HttpResponse> HttpConnection::Send(const HttpRequestSpec& spec, std::string* error) {
  std::string request = spec.method + " " + spec.target + " HTTP/1.1\r\n";
  bool has_host = false, has_length = false;
  for (const auto& [k, v] : spec.headers) {
    request += k + ": " + v + "\r\n";
    has_host = has_host || ToLowerAscii(k) == "host";
    has_length =
        has_length || ToLowerAscii(k) == "content-length" || ToLowerAscii(k) == "transfer-encoding";
  }
  if (!has_host) request += "Host: 127.0.0.1:" + std::to_string(port_) + "\r\n";
  if (!has_length && (!spec.body.empty() || spec.method == "POST" || spec.method == "PUT")) {
    request += "Content-Length: " + std::to_string(spec.body.size()) + "\r\n";
  }
  request += "\r\n" + spec.body;
  if (!Write(request)) {
    if (error) *error = "send to port " + std::to_string(port_) + " failed";
    return std::nullopt;
  }
  return Read(spec.method, spec.timeout, error);
}

bool HttpConnection::Write(const std::string& bytes) {
  if (fd_ >= 0 && SendAll(fd_, bytes)) return true;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return false;
}

std::optional<HttpResponse> HttpConnection::Read(const std::string& method,
                                                 std::chrono::milliseconds timeout,
                                                 std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<HttpResponse> {
    if (error) *error = why;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return std::nullopt;
  };
  if (fd_ < 0) return fail("not connected to port " + std::to_string(port_));
  // Reads until `pending_` holds `bytes` bytes; false on timeout or close.
  auto deadline = Clock::now() + timeout;
  auto fill = [&](size_t bytes) {
    char chunk[16384];
    while (pending_.size() < bytes) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int r = poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      pending_.append(chunk, static_cast<size_t>(n));
    }
    return true;
  };
  size_t head_end;
  while ((head_end = pending_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(pending_.size() + 1)) return fail("no complete response head: " + pending_);
  }
  HttpResponse response;
  if (auto why = ParseResponseHead(pending_.substr(0, head_end), &response); !why.empty()) {
    return fail(why);
  }
  pending_.erase(0, head_end + 4);
  bool bodiless = method == "HEAD" || response.status / 100 == 1 || response.status == 204 ||
                  response.status == 304;
  if (!bodiless) {
    if (response.Header("content-length").empty()) return fail("no Content-Length");
    size_t length = std::stoul(response.Header("content-length"));
    if (!fill(length)) return fail("truncated body");
    response.body = pending_.substr(0, length);
    pending_.erase(0, length);
  }
  return response;
}

ChildProcess::ChildProcess(const std::string& name, const std::vector<std::string>& args,
                           SpawnOptions options) {
  static std::atomic<int> counter{0};
  std::filesystem::path program =
      name.find('/') == std::string::npos ? BinDir() / name : std::filesystem::path(name);
  log_path_ = std::filesystem::temp_directory_path() /
              ("sg-child-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
               program.filename().string() + ".log");
  options.stdout_path = log_path_;
  options.stderr_path = log_path_;
  std::vector<std::string> argv{program.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string error;
  process_ = Subprocess::Spawn(argv, options, &error);
  if (!process_) ADD_FAILURE() << "cannot start " << program << ": " << error;
}

ChildProcess::~ChildProcess() {
  if (!process_) return;
  process_->Stop(std::chrono::seconds(5));
  if (::testing::Test::HasFailure()) {
    std::cerr << "[child log kept] " << log_path_ << "\n";
  } else {
    std::error_code ec;
    std::filesystem::remove(log_path_, ec);
  }
}

bool ChildProcess::WaitReady(int port, const std::string& health, std::chrono::milliseconds timeout,
                             std::string* why) {
  auto deadline = Clock::now() + timeout;
  auto explain = [&](const std::string& reason) {
    if (why) *why = reason + "\n--- process log ---\n" + Log();
    return false;
  };
  if (!process_) return explain("not started");
  while (Clock::now() < deadline) {
    if (!process_->Running()) {
      return explain("process " + DescribeWaitStatus(process_->exit_status().value_or(0)));
    }
    if (health.empty()) {
      if (WaitForPort(port, std::chrono::milliseconds(50))) return true;
    } else {
      HttpRequestSpec spec;
      spec.target = health;
      spec.timeout = std::chrono::seconds(2);
      auto response = Http(port, spec);
      if (response && response->status >= 200 && response->status < 300) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return explain("not ready within " + std::to_string(timeout.count()) + " ms");
}

int ChildProcess::Stop(std::chrono::milliseconds grace) {
  return process_ ? process_->Stop(grace) : -1;
}

std::string ChildProcess::Log() const {
  return ReadFile(log_path_);
}

}  // namespace sg::testing
