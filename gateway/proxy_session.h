// ProxySession: one client connection. Reads a request (limits, framing checks, timeouts), routes
// it, sends it to the route's primary and, at the same moment, sampled copies to its mirrors;
// writes the primary's response as soon as it is ready; repeats while keep-alive holds.
// All members are touched only on the session's shard thread (the socket's executor).
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>

#include "gateway/gateway_state.h"

namespace sg::gateway {

class ProxySession : public std::enable_shared_from_this<ProxySession> {
 public:
  // REQUIRES: `socket`'s executor is shard `shard`'s io_context, which one thread runs (so the
  // session's handlers never run concurrently).
  ProxySession(tcp::socket socket, std::shared_ptr<GatewayState> state, size_t shard);
  ~ProxySession();

  void Start();
  // Graceful stop: an idle connection closes now; a busy one after its current response.
  // Thread-safe (posts to the session's thread).
  void Drain();
  // Closes the connection now. Thread-safe (posts to the session's thread).
  void Abort();
  // Cancels the pending operation when its deadline passed. Called by the shard's sweeper on the
  // session's thread.
  void CheckDeadline(std::chrono::steady_clock::time_point now);

 private:
  enum class Phase { kWaiting, kReading, kProxying, kWriting, kClosing, kClosed };
  static constexpr std::chrono::milliseconds kLingerTime{500};  // after an error response
  static constexpr std::size_t kLingerMaxBytes = 1 << 20;
  static constexpr std::size_t kReadChunk = 8192;

  void DoWaitRequest();
  void OnWaitRequest(beast::error_code ec, std::size_t bytes);
  void DoReadHeader();
  void OnReadHeader(beast::error_code ec, std::size_t bytes);
  void OnContinueWritten(beast::error_code ec, std::size_t bytes);
  void DoReadBody();
  void OnReadBody(beast::error_code ec, std::size_t bytes);
  void OnReadError(beast::error_code ec);
  void HandleRequest();
  void DispatchMirrors(RouteRuntime& route, const std::shared_ptr<const Request>& upstream,
                       std::chrono::steady_clock::time_point primary_dispatch);
  void OnPrimary(std::shared_ptr<UpstreamResult> result);
  void SendError(http::status status, const std::string& message, bool close);
  void DoWrite();
  void OnWrite(beast::error_code ec, std::size_t bytes);
  void LingeringClose();
  void DoLinger();
  void Close();
  void ArmTimer(std::chrono::steady_clock::duration timeout);
  void DisarmTimer();
  void LogAccess();

  tcp::socket socket_;
  std::shared_ptr<GatewayState> state_;
  const size_t shard_;
  std::string client_ip_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Phase phase_ = Phase::kWaiting;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  bool timed_out_ = false;
  bool draining_ = false;

  // The request in progress.
  unsigned request_version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  std::string method_;
  std::string target_;
  std::string route_name_;
  RouteRuntime* route_ = nullptr;  // owned by state_
  std::string request_id_;
  std::chrono::steady_clock::time_point request_complete_;
  std::vector<std::shared_ptr<PairCollector>> collectors_;

  Response response_;
  std::unique_ptr<std::array<char, 16384>> linger_buffer_;
  std::size_t linger_budget_ = 0;
  bool close_after_write_ = false;
};

}  // namespace sg::gateway
