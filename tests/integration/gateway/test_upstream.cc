#include "tests/integration/gateway/test_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/strings.h"

namespace sg::testing {
namespace {

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string Response(int status, const std::string& reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

}  // namespace

TestUpstream::TestUpstream(Options options) : options_(std::move(options)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::listen(listen_fd_, 512);
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TestUpstream::~TestUpstream() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mutex_);
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  stopped_.notify_all();
  for (auto& worker : workers) worker.join();
}

std::vector<TestUpstream::Received> TestUpstream::received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

size_t TestUpstream::received_count() const {
  std::lock_guard lock(mutex_);
  return received_.size();
}

void TestUpstream::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    connections_++;
    std::lock_guard lock(mutex_);
    if (stopping_) {
      ::close(fd);
      break;
    }
    client_fds_.push_back(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

bool TestUpstream::ReadRequest(int fd, std::string& buffer, Received* out) {
  char chunk[16384];
  size_t header_end;
  while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  std::string head = buffer.substr(0, header_end);
  auto lines = Split(head, '\n');
  auto request_line = Split(Trim(lines[0]), ' ');
  if (request_line.size() < 2) return false;
  out->method = request_line[0];
  out->target = request_line[1];
  for (size_t i = 1; i < lines.size(); ++i) {
    auto line = std::string(Trim(lines[i]));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto name = ToLowerAscii(line.substr(0, colon));
    auto value = std::string(Trim(line.substr(colon + 1)));
    auto& slot = out->headers[name];
    slot = slot.empty() ? value : slot + ", " + value;
  }
  size_t length = 0;
  if (auto it = out->headers.find("content-length"); it != out->headers.end()) {
    length = std::stoul(it->second);
  }
  buffer.erase(0, header_end + 4);
  if (auto it = out->headers.find("transfer-encoding"); it != out->headers.end()) {
    // Chunked: sizes in hex, each chunk followed by CRLF, ended by a zero-size chunk (no
    // trailers).
    auto need = [&](size_t bytes) {
      while (buffer.size() < bytes) {
        ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) return false;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      return true;
    };
    for (;;) {
      size_t line_end;
      while ((line_end = buffer.find("\r\n")) == std::string::npos) {
        if (!need(buffer.size() + 1)) return false;
      }
      size_t size = std::stoul(buffer.substr(0, line_end), nullptr, 16);
      if (!need(line_end + 2 + size + 2)) return false;
      out->body.append(buffer, line_end + 2, size);
      buffer.erase(0, line_end + 2 + size + 2);
      if (size == 0) return true;
    }
  }
  while (buffer.size() < length) {
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  out->body = buffer.substr(0, length);
  buffer.erase(0, length);
  // Keep the raw form for kEcho.
  return true;
}

void TestUpstream::Serve(int fd) {
  std::string buffer;
  for (;;) {
    Received request;
    if (!ReadRequest(fd, buffer, &request)) break;
    {
      std::lock_guard lock(mutex_);
      received_.push_back(request);
    }
    bool ok = true;
    switch (options_.mode) {
      case Mode::kFixed:
        ok = SendAll(fd, Response(200, "OK", options_.body));
        break;
      case Mode::kEcho: {
        std::string body = request.method + " " + request.target + "\n";
        for (const auto& [name, value] : request.headers) body += name + ": " + value + "\n";
        body += "\n" + request.body;
        ok = SendAll(fd, Response(200, "OK", body));
        break;
      }
      case Mode::kChunked: {
        auto half = options_.body.size() / 2;
        auto chunk = [](const std::string& data) {
          char size[32];
          std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
          return std::string(size) + data + "\r\n";
        };
        ok = SendAll(fd,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n" +
                         chunk(options_.body.substr(0, half)) + chunk(options_.body.substr(half)) +
                         "0\r\n\r\n");
        break;
      }
      case Mode::kSlow: {
        std::unique_lock lock(mutex_);
        stopped_.wait_for(lock, options_.delay, [this] { return stopping_.load(); });
        lock.unlock();
        ok = SendAll(fd, Response(200, "OK", options_.body));
        break;
      }
      case Mode::kEarlyHints:
        ok = SendAll(fd, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n") &&
             SendAll(fd, Response(200, "OK", options_.body));
        break;
      case Mode::kEndlessHints:
        while (!stopping_ && SendAll(fd, "HTTP/1.1 103 Early Hints\r\n\r\n")) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ok = false;
        break;
      case Mode::kError:
        ok = SendAll(fd, Response(500, "Internal Server Error", "boom"));
        break;
      case Mode::kReset: {
        SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
        linger hard{1, 0};  // close with RST
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
        ok = false;
        break;
      }
      case Mode::kResetMidBody: {
        SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(options_.body.size()) +
                        "\r\n\r\n" + options_.body.substr(0, options_.body.size() / 2));
        linger hard{1, 0};  // close with RST
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
        ok = false;
        break;
      }
      case Mode::kHang: {
        std::unique_lock lock(mutex_);
        stopped_.wait(lock, [this] { return stopping_.load(); });
        ok = false;
        break;
      }
      case Mode::kClose:
        ok = false;
        break;
      case Mode::kCloseAfter:
        SendAll(fd, Response(200, "OK", options_.body));
        ok = false;
        break;
    }
    if (!ok) break;
  }
  std::lock_guard lock(mutex_);
  client_fds_.erase(std::remove(client_fds_.begin(), client_fds_.end(), fd), client_fds_.end());
  ::close(fd);
  closed_connections_++;
}

}  // namespace sg::testing
