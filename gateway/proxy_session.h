// ProxySession: one client connection, the downstream side. Reads a request header (limits,
// framing checks, timeouts) and routes it. A request a mirror may take (docs/gateway.md,
// "Streaming") has its body buffered whole and copied to the sampled mirrors; any other request's
// body is streamed. Either way the primary's exchange is an UpstreamExchange (the same one every
// mirror copy runs) that the session uses as its ExchangeUser: it hands the exchange the body
// (the buffered one at once, a streamed one piece by piece through one 64 KiB buffer), then
// relays the response through the same buffer (a response that fits in it is sent whole, with
// Content-Length), capturing its first bytes for the pair records. Repeats while keep-alive holds.
// All members are touched only on the session's shard thread (the socket's executor).
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>

#include "gateway/gateway_state.h"

namespace sg::gateway {

class ProxySession : public std::enable_shared_from_this<ProxySession>, private ExchangeUser {
 public:
  // REQUIRES: `socket`'s executor is shard `shard`'s io_context, which one thread runs (so the
  // session's handlers never run concurrently).
  ProxySession(Socket socket, std::shared_ptr<GatewayState> state, size_t shard);
  ~ProxySession() override;

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
  // kWaiting: idle between requests (Drain closes it at once); kBusy: from a request's first
  // byte until its response is written, or lingering before the close; kClosed: closed.
  enum class Phase { kWaiting, kBusy, kClosed };
  static constexpr std::chrono::milliseconds kLingerTime{500};  // after an error response
  static constexpr std::size_t kLingerMaxBytes = 1 << 20;
  static constexpr std::size_t kReadChunk = 8192;
  static constexpr std::size_t kRelayChunk = 64 * 1024;  // the streamed path's one buffer

  void DoWaitRequest();
  void OnWaitRequest(beast::error_code ec, std::size_t bytes);
  void DoReadHeader();
  // Parses the header once buffer_ holds it whole, else reads more (OnHeaderBytes).
  void ParseHeader();
  void OnHeaderBytes(beast::error_code ec, std::size_t bytes);
  void OnReadHeader(beast::error_code ec);
  void OnContinueWritten(beast::error_code ec, std::size_t bytes);
  // Reads the body the way the header decided: streamed, collected (chunked, mirrorable) or read
  // whole (a Content-Length a mirror may take, or no route).
  void ReadBody();
  void StartCollecting();
  // Grows body_reservation_ to hold collected_ and its next piece. False when the memory budget
  // cannot: the body is streamed from there (counted memory_budget).
  bool ReserveCollectRoom();
  // No route: the body is read and dropped (the answer is 404 whatever it holds).
  void StartDiscarding();
  void OnDiscardPiece(beast::error_code ec, std::size_t bytes);
  using PieceHandler = void (ProxySession::*)(beast::error_code, std::size_t);
  void DoClientPieceRead(PieceHandler on_piece);
  void OnCollectPiece(beast::error_code ec, std::size_t bytes);
  void DoReadBody();
  void OnReadBody(beast::error_code ec, std::size_t bytes);
  void OnReadError(beast::error_code ec);
  // Routes the request whose header was read (route_ stays null without a route) and decides
  // whether its body is streamed.
  void RouteRequest();
  bool ShouldStream() const;
  uint64_t StreamedLimit() const;  // max_streamed_body_bytes, 0 meaning no limit
  void HandleRequest(Request request);
  // The streamed path: one exchange on a leased primary connection, driven by this session.
  void StartStreamed();
  // Parses the body bytes already read into piece_ (first_piece_). False when they were refused
  // (the client was answered).
  bool TakeReadBody();
  // Starts the primary's exchange: the head goes with the body bytes already in memory.
  void StartPrimary();
  // ExchangeUser: the primary's exchange.
  std::shared_ptr<void> ExchangeKeepAlive() override;
  void OnRequestWritten(bool more) override;
  void OnResponsePiece(std::size_t n, bool done) override;
  void OnExchangeFailed(const ExchangeFailure& failure) override;
  void OnRequestPieceRead(beast::error_code ec, std::size_t bytes);
  void OnResponsePieceWritten(beast::error_code ec, std::size_t bytes);
  void StartRelayResponse();
  void FinishStreamed();
  void AbortStreamed();
  // True (and the exchange abandoned) when the session was closed while an operation was
  // pending.
  bool ClosedMidStream();
  // True once the whole request body was read (or was buffered before the exchange).
  bool RequestBodyRead() const;
  // Hands the primary's outcome (head and captured body prefix when kOk) to the pair collectors.
  void CapturePrimary(UpstreamOutcome outcome, std::string error);
  // Shapes response_ (the primary's, complete) for the client and writes it.
  void SendUpstreamResponse();
  void DispatchMirrors(RouteRuntime& route, const std::shared_ptr<const Request>& upstream,
                       std::chrono::steady_clock::time_point primary_dispatch);
  // A route with a cutover: sets served_by_candidate_ from the request's sticky key.
  void PickServingSide(const http::fields& head);
  void SendError(http::status status, const std::string& message, bool close);
  // Sets Connection on a response to the client from close_after_write_ and the request's version
  // (the response's hop-by-hop fields were removed).
  void SetConnection(http::fields& fields) const;
  void DoWrite();
  void OnWrite(beast::error_code ec, std::size_t bytes);
  void LingeringClose();
  void DoLinger();
  void Close();
  void ArmTimer(std::chrono::steady_clock::duration timeout);
  void DisarmTimer();
  void LogAccess();

  Socket socket_;
  std::shared_ptr<GatewayState> state_;
  const size_t shard_;
  std::string client_ip_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::size_t header_scanned_ = 0;  // ScanRequestHeader's progress over buffer_
  bool obs_fold_ = false;           // the header read so far has a folded line
  // The streamed path (a request not mirrored). Operations are strictly sequential (read a piece,
  // write it), so one buffer and one deadline serve both connections.
  bool streamed_ = false;
  std::optional<http::request_parser<http::buffer_body>> stream_parser_;
  std::shared_ptr<const Request> buffered_request_;  // set when the body was buffered (mirrored)
  std::string collected_;  // a chunked body collected for mirroring (or its streamed start)
  // The memory budget's share for the body being buffered or collected (its capacity); moves
  // with a buffered body into the request the mirrors share.
  BodyBudget::Reservation body_reservation_;
  bool over_budget_ = false;     // streamed because the budget could not hold the body
  int64_t collect_limit_ = 0;    // past it, the collected body is streamed instead
  bool prefix_pending_ = false;  // collected_ still to be sent to the primary
  std::size_t first_piece_ = 0;  // body bytes in piece_ that go with the head (TakeReadBody)
  std::string capture_;  // the primary's body prefix for pair records (capture limit + 1 bytes)
  // The primary's request when its body is streamed (its head moved out of the client's parser).
  http::request<http::buffer_body> upstream_request_;
  std::string upstream_head_;  // the primary's serialized head, when written whole
  // The primary's exchange (connection, request write, response read, stale retry, deadlines).
  UpstreamExchange exchange_;
  bool head_sent_ = false;  // the response head went (or is going) to the client
  std::chrono::steady_clock::time_point dispatched_;
  http::response<http::buffer_body> relay_response_;
  std::optional<http::response_serializer<http::buffer_body>> response_serializer_;
  std::unique_ptr<char[]> piece_;
  std::size_t piece_size_ = 0;
  int response_status_ = 0;
  uint64_t response_bytes_ = 0;
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
  RouteRuntime* route_ = nullptr;     // owned by state_
  bool served_by_candidate_ = false;  // the route's cutover candidate serves this request
  std::string request_id_;
  std::chrono::steady_clock::time_point request_start_;     // its first bytes arrived
  std::chrono::steady_clock::time_point request_complete_;  // read (or streamed); {}: not yet
  std::vector<std::shared_ptr<PairCollector>> collectors_;

  Response response_;
  std::string head_text_;  // a serialized head (upstream request or client response) being sent
  std::unique_ptr<std::array<char, 16384>> linger_buffer_;
  std::size_t linger_budget_ = 0;
  bool close_after_write_ = false;
};

}  // namespace sg::gateway
