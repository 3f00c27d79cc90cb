// TestUpstream: a small HTTP/1.1 server for the gateway's integration tests that misbehaves on
// purpose. Blocking sockets, one thread per connection, keep-alive; every request it receives is
// recorded for assertions. Stopping it (destructor) closes every connection and joins every thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sg::testing {

class TestUpstream {
 public:
  enum class Mode {
    kFixed,         // 200, body `body`
    kEcho,          // 200, body: the request as received (request line, headers, blank line, body)
    kChunked,       // 200, body `body` sent with Transfer-Encoding: chunked in two chunks
    kSlow,          // like kFixed after `delay`
    kError,         // 500, body "boom"
    kReset,         // sends half a response, then resets the connection (RST)
    kResetMidBody,  // announces body.size() bytes, sends half of `body`, then resets (RST)
    kHang,          // reads the request and never answers
    kClose,         // closes the connection without answering
    kEarlyHints,    // 103 Early Hints (interim), then like kFixed
    kEndlessHints,  // interim 103 responses, one after another, never a final one
    kCloseAfter,    // like kFixed (keep-alive), then closes the connection: a pooled connection
                    // the upstream has closed (stale) for the next request
  };
  struct Options {
    Mode mode = Mode::kFixed;
    std::string body = "hello from upstream\n";
    std::chrono::milliseconds delay{0};
  };
  struct Received {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // lower-case names, repeated joined by ", "
    std::string body;                            // de-chunked when sent chunked
  };

  explicit TestUpstream(Options options);
  ~TestUpstream();
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;

  int port() const { return port_; }
  std::vector<Received> received() const;
  size_t received_count() const;
  int connections() const { return connections_.load(); }
  int closed_connections() const { return closed_connections_.load(); }

 private:
  void AcceptLoop();
  void Serve(int fd);
  bool ReadRequest(int fd, std::string& buffer, Received* out);

  Options options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> closed_connections_{0};
  std::thread acceptor_;
  // Guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable stopped_;
  std::vector<int> client_fds_;
  std::vector<std::thread> workers_;
  std::vector<Received> received_;
};

}  // namespace sg::testing
