#include "gateway/proxy_session.h"

#include <algorithm>
#include <array>
#include <limits>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/container/small_vector.hpp>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/pair_record.h"
#include "common/strings.h"
#include "gateway/header_rules.h"

namespace sg::gateway {

using Clock = std::chrono::steady_clock;

ProxySession::ProxySession(Socket socket, std::shared_ptr<GatewayState> state, size_t shard)
    : socket_(std::move(socket)),
      state_(std::move(state)),
      shard_(shard),
      exchange_(this, socket_.get_executor(), shard) {
  state_->active_sessions.fetch_add(1, std::memory_order_relaxed);
  beast::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  if (!ec) client_ip_ = remote.address().to_string();
  socket_.set_option(tcp::no_delay(true), ec);
}

ProxySession::~ProxySession() {
  state_->RemoveSession(shard_, this);
  state_->active_sessions.fetch_sub(1, std::memory_order_relaxed);
}

void ProxySession::Start() {
  net::dispatch(socket_.get_executor(),
                beast::bind_front_handler(&ProxySession::DoWaitRequest, shared_from_this()));
}

void ProxySession::Drain() {
  net::post(socket_.get_executor(), [self = shared_from_this()] {
    self->draining_ = true;
    if (self->phase_ == Phase::kWaiting) self->Close();
  });
}

void ProxySession::Abort() {
  net::post(socket_.get_executor(), [self = shared_from_this()] { self->Close(); });
}

void ProxySession::ArmTimer(Clock::duration timeout) {
  // No timer object per operation: the shard's sweeper compares deadline_ every tick.
  timed_out_ = false;
  deadline_ = Clock::now() + timeout;
}

void ProxySession::DisarmTimer() {
  deadline_ = Clock::time_point::max();
}

void ProxySession::CheckDeadline(Clock::time_point now) {
  // The primary's exchange has deadlines of its own (its operation, or its wait for a
  // connection).
  exchange_.CheckDeadline(now);
  // A passed deadline cancels the pending client operation, whose handler sees timed_out_.
  if (now < deadline_) return;
  deadline_ = Clock::time_point::max();
  timed_out_ = true;
  beast::error_code ignored;
  socket_.cancel(ignored);
}

void ProxySession::DoWaitRequest() {
  phase_ = Phase::kWaiting;
  if (draining_ || state_->draining.load(std::memory_order_relaxed)) return Close();
  // Bytes already buffered (a pipelined request) are parsed at once.
  if (buffer_.size() > 0) return DoReadHeader();
  // Wait for (and read) the first bytes of the next request within the keep-alive timeout.
  ArmTimer(state_->config.keep_alive_timeout);
  socket_.async_read_some(
      buffer_.prepare(kReadChunk),
      beast::bind_front_handler(&ProxySession::OnWaitRequest, shared_from_this()));
}

void ProxySession::OnWaitRequest(beast::error_code ec, std::size_t bytes) {
  DisarmTimer();
  if (ec) return Close();  // keep-alive timeout, drain, or the client left: nothing was sent
  buffer_.commit(bytes);
  DoReadHeader();
}

void ProxySession::DoReadHeader() {
  phase_ = Phase::kBusy;
  // Read the request header within the header timeout and the header size limit.
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(state_->config.max_header_bytes));
  // The larger limit for now: whether the body is buffered is known once the header is.
  parser_->body_limit(
      std::max(StreamedLimit(), static_cast<uint64_t>(state_->config.max_request_body_bytes)));
  ArmTimer(state_->config.client_header_timeout);
  // The request's first bytes are here (read just now, or pipelined behind the last one): the
  // access log measures a request refused before it is complete from this moment.
  request_start_ = Clock::now();
  request_complete_ = {};
  header_scanned_ = 0;
  obs_fold_ = false;
  ParseHeader();
}

void ProxySession::ParseHeader() {
  // The header goes to the parser once it is whole (Beast's parser waits for that too), after a
  // look at its bytes for obs-fold, which the parser would unfold silently (RFC 9112 section
  // 5.2: refused, as nginx does). Usually it came whole with the first read.
  const auto data = buffer_.data();
  std::string_view bytes(static_cast<const char*>(data.data()), data.size());
  std::size_t end = ScanRequestHeader(bytes, &header_scanned_, &obs_fold_);
  if (end == 0) {
    if (bytes.size() >= static_cast<std::size_t>(state_->config.max_header_bytes)) {
      DisarmTimer();
      return OnReadError(http::error::header_limit);
    }
    // Read more of it within the header timeout (armed once, in DoReadHeader).
    socket_.async_read_some(
        buffer_.prepare(kReadChunk),
        beast::bind_front_handler(&ProxySession::OnHeaderBytes, shared_from_this()));
    return;
  }
  DisarmTimer();
  if (obs_fold_) {
    state_->metrics.client_errors.WithLabels({"bad_request"}).Increment();
    return SendError(http::status::bad_request, "obsolete line folding in the request header",
                     /*close=*/true);
  }
  beast::error_code ec;
  buffer_.consume(parser_->put(net::buffer(bytes.data(), end), ec));
  if (ec == http::error::need_more || (!ec && !parser_->is_header_done())) {
    ec = http::error::bad_line_ending;  // ended by a bare LF
  }
  OnReadHeader(ec);
}

void ProxySession::OnHeaderBytes(beast::error_code ec, std::size_t bytes) {
  if (ec) {
    DisarmTimer();
    return OnReadError(ec);
  }
  buffer_.commit(bytes);
  ParseHeader();
}

void ProxySession::OnReadHeader(beast::error_code ec) {
  if (ec) return OnReadError(ec);
  const auto& request = parser_->get();
  if (auto problem = CheckRequestFraming(request.base()); !problem.empty()) {
    state_->metrics.client_errors.WithLabels({"bad_framing"}).Increment();
    return SendError(http::status::bad_request, problem, /*close=*/true);
  }
  if (auto problem = CheckRequestHost(request.base()); !problem.empty()) {
    state_->metrics.client_errors.WithLabels({"bad_host"}).Increment();
    return SendError(http::status::bad_request, problem, /*close=*/true);
  }
  RouteRequest();
  streamed_ = ShouldStream();
  if (auto length = parser_->content_length().value_or(0);
      !streamed_ && route_ && !parser_->chunked() && length > 0) {
    // A buffered body's room comes out of the memory budget before a byte of it is held; one
    // the budget cannot hold is streamed to the primary instead (not mirrored: memory_budget).
    body_reservation_ = state_->body_budget->Reserve();
    if (!body_reservation_.GrowTo(static_cast<int64_t>(length))) streamed_ = over_budget_ = true;
  }
  if (streamed_) {
    parser_->body_limit(StreamedLimit());
  } else {
    auto limit = static_cast<uint64_t>(state_->config.max_request_body_bytes);
    auto length = parser_->content_length();
    if (length && *length > limit) return OnReadError(http::error::body_limit);
    parser_->body_limit(limit);
  }
  if (parser_->is_done()) return streamed_ ? StartStreamed() : HandleRequest(parser_->release());
  // An HTTP/1.0 client cannot take a 1xx response: its expectation is ignored (RFC 9110 section
  // 10.1.1), and its body is read when it comes.
  auto expect = request.find(http::field::expect);
  if (request.version() >= 11 && expect != request.end() &&
      ToLowerAscii(expect->value()) == "100-continue") {
    // The client waits for this before sending its body.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    ArmTimer(state_->config.write_timeout);
    net::async_write(
        socket_, net::buffer(kContinue.data(), kContinue.size()),
        beast::bind_front_handler(&ProxySession::OnContinueWritten, shared_from_this()));
    return;
  }
  ReadBody();
}

void ProxySession::OnContinueWritten(beast::error_code ec, std::size_t) {
  DisarmTimer();
  if (ec) return Close();
  ReadBody();
}

void ProxySession::ReadBody() {
  if (streamed_) return StartStreamed();
  if (!route_) return StartDiscarding();
  if (parser_->chunked()) return StartCollecting();
  DoReadBody();
}

void ProxySession::StartDiscarding() {
  // Read piece by piece into the relay buffer and dropped, within max_request_body_bytes (413),
  // so that an unrouted body never takes memory.
  stream_parser_.emplace(std::move(*parser_));
  parser_.reset();
  stream_parser_->body_limit(static_cast<uint64_t>(state_->config.max_request_body_bytes));
  if (!piece_) piece_ = std::make_unique<char[]>(kRelayChunk);
  DoClientPieceRead(&ProxySession::OnDiscardPiece);
}

void ProxySession::OnDiscardPiece(beast::error_code ec, std::size_t) {
  DisarmTimer();
  if (ec == http::error::need_buffer) ec = {};
  if (ec) return OnReadError(ec);
  if (!stream_parser_->is_done()) return DoClientPieceRead(&ProxySession::OnDiscardPiece);
  HandleRequest({});  // 404
}

void ProxySession::StartCollecting() {
  // A chunked body on a route a mirror may take: its size is known only at its end, so it is
  // collected while it fits the mirrors' limit, and streamed once it grows past it.
  stream_parser_.emplace(std::move(*parser_));
  parser_.reset();
  stream_parser_->body_limit(StreamedLimit());  // it may turn out streamed
  // The head moves out of the parser at once, as on the streamed path: the trailer fields the
  // parser adds to its head when the body ends are dropped with it, never merged into the
  // request's header section (RFC 9110 section 6.5.1).
  upstream_request_ = {};
  upstream_request_.base() = std::move(stream_parser_->get().base());
  collect_limit_ = 0;
  for (const auto& mirror : route_->mirrors) {
    if (mirror->percent() <= 0) continue;
    const auto& config = mirror->config();
    collect_limit_ =
        std::max(collect_limit_, config.mirror_body ? config.max_body_bytes
                                                    : state_->config.max_request_body_bytes);
  }
  collect_limit_ = std::min(collect_limit_, state_->config.max_request_body_bytes);
  collected_.clear();
  if (!piece_) piece_ = std::make_unique<char[]>(kRelayChunk);
  body_reservation_ = state_->body_budget->Reserve();
  if (!ReserveCollectRoom()) {
    streamed_ = over_budget_ = true;
    return StartStreamed();
  }
  DoClientPieceRead(&ProxySession::OnCollectPiece);
}

bool ProxySession::ReserveCollectRoom() {
  // Grown as a string grows (doubling, up to the collect limit and one piece), and collected_
  // allocated to exactly the reserved size, so the budget counts the memory really held.
  const auto piece = static_cast<int64_t>(kRelayChunk);
  const auto needed = static_cast<int64_t>(collected_.size()) + piece;
  if (needed <= body_reservation_.bytes()) return true;
  const auto wanted =
      std::max(needed, std::min(2 * body_reservation_.bytes(), collect_limit_ + piece));
  if (!body_reservation_.GrowTo(wanted) && !body_reservation_.GrowTo(needed)) return false;
  std::string grown;
  grown.reserve(static_cast<std::size_t>(body_reservation_.bytes()));
  grown.append(collected_);
  collected_.swap(grown);
  return true;
}

void ProxySession::DoClientPieceRead(PieceHandler on_piece) {
  // Read the next piece of the client's body within the body timeout (per piece).
  auto& body = stream_parser_->get().body();
  body.data = piece_.get();
  body.size = kRelayChunk;
  ArmTimer(state_->config.client_body_timeout);
  http::async_read(socket_, buffer_, *stream_parser_,
                   beast::bind_front_handler(on_piece, shared_from_this()));
}

void ProxySession::OnCollectPiece(beast::error_code ec, std::size_t) {
  DisarmTimer();
  if (ec == http::error::need_buffer) ec = {};
  if (ec) return OnReadError(ec);
  collected_.append(piece_.get(), kRelayChunk - stream_parser_->get().body().size);
  if (collected_.size() > static_cast<std::size_t>(collect_limit_)) {
    // Too large to mirror after all: streamed, what was collected going first.
    streamed_ = true;
    prefix_pending_ = true;
    return StartStreamed();
  }
  if (!stream_parser_->is_done()) {
    if (ReserveCollectRoom()) return DoClientPieceRead(&ProxySession::OnCollectPiece);
    // The budget cannot hold more: streamed, what was collected going first.
    streamed_ = over_budget_ = true;
    prefix_pending_ = true;
    return StartStreamed();
  }
  Request request;
  request.base() = std::move(upstream_request_.base());
  request.body() = std::move(collected_);
  collected_.clear();
  stream_parser_.reset();
  HandleRequest(std::move(request));
}

void ProxySession::DoReadBody() {
  // Read the rest of the body within the body timeout and the body size limit.
  ArmTimer(state_->config.client_body_timeout);
  http::async_read(socket_, buffer_, *parser_,
                   beast::bind_front_handler(&ProxySession::OnReadBody, shared_from_this()));
}

void ProxySession::OnReadBody(beast::error_code ec, std::size_t) {
  DisarmTimer();
  if (ec) return OnReadError(ec);
  HandleRequest(parser_->release());
}

void ProxySession::OnReadError(beast::error_code ec) {
  bool got_some = stream_parser_ || (parser_ && (parser_->got_some() || buffer_.size() > 0));
  if (ec == net::error::operation_aborted && timed_out_) {
    if (!got_some) return Close();
    state_->metrics.client_errors.WithLabels({"timeout"}).Increment();
    return SendError(http::status::request_timeout, "request not received in time", true);
  }
  if (ec == http::error::header_limit) {
    state_->metrics.client_errors.WithLabels({"header_too_large"}).Increment();
    return SendError(http::status::request_header_fields_too_large, "request header too large",
                     true);
  }
  if (ec == http::error::body_limit) {
    state_->metrics.client_errors.WithLabels({"body_too_large"}).Increment();
    return SendError(http::status::payload_too_large, "request body too large", true);
  }
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == net::error::operation_aborted ||
      ec == http::error::partial_message) {
    return Close();  // the client went away; nobody to answer
  }
  state_->metrics.client_errors.WithLabels({"bad_request"}).Increment();
  SendError(http::status::bad_request, "malformed request: " + ec.message(), true);
}

void ProxySession::RouteRequest() {
  const auto& request = parser_->get();
  request_version_ = request.version();
  keep_alive_ = request.keep_alive();
  head_ = request.method() == http::verb::head;
  method_ = std::string(request.method_string());
  target_ = std::string(request.target());
  std::string_view path = target_;
  path = path.substr(0, path.find('?'));
  auto host = request.find(http::field::host);
  int index = state_->routes.Match(host == request.end() ? "" : std::string_view(host->value()),
                                   path, method_);
  request_id_.clear();
  if (index < 0) {
    route_name_.clear();
    route_ = nullptr;
    return;
  }
  route_ = &state_->route_runtimes[static_cast<size_t>(index)];
  route_name_ = route_->config.name;
}

uint64_t ProxySession::StreamedLimit() const {
  auto limit = state_->config.max_streamed_body_bytes;
  return limit == 0 ? std::numeric_limits<uint64_t>::max() : static_cast<uint64_t>(limit);
}

bool ProxySession::ShouldStream() const {
  // Decided from the header alone: the body is buffered only when a mirror may take it (a
  // mirror with a percent above 0 that sends no body, or whose max_body_bytes the declared
  // Content-Length fits; a chunked body's size is unknown, so it is buffered on such a route).
  // Every other request, including one without a route match, streams.
  if (!route_) return false;  // 404 after the (bounded) body, as before
  bool chunked = parser_->chunked();
  uint64_t size = parser_->content_length().value_or(0);
  if (!chunked && size > static_cast<uint64_t>(state_->config.max_request_body_bytes)) return true;
  for (const auto& mirror : route_->mirrors) {
    const auto& config = mirror->config();
    if (mirror->percent() <= 0) continue;
    if (!config.mirror_body || chunked || size <= static_cast<uint64_t>(config.max_body_bytes)) {
      return false;
    }
  }
  return true;
}

void ProxySession::HandleRequest(Request request) {
  request_complete_ = Clock::now();
  if (!route_) {
    parser_.reset();
    return SendError(http::status::not_found, "no route for this request", false);
  }
  auto& route = *route_;
  route.requests->Increment();

  // The upstream copy: hop-by-hop headers removed, X-Forwarded-*, X-Request-Id, fresh framing.
  // It holds the body's share of the memory budget until the primary and every mirror copy
  // dropped it.
  struct BufferedRequest {
    Request request;
    BodyBudget::Reservation reservation;
  };
  auto buffered = std::make_shared<BufferedRequest>(
      BufferedRequest{std::move(request), std::move(body_reservation_)});
  std::shared_ptr<Request> upstream(buffered, &buffered->request);
  parser_.reset();
  RemoveHopByHop(*upstream);
  upstream->erase(http::field::expect);
  // Only the gateway marks a request as a mirror copy (the copies get their own mark).
  if (!state_->config.shadow_header.empty()) upstream->erase(state_->config.shadow_header);
  request_id_ = EnsureRequestId(*upstream);
  SetForwardedHeaders(*upstream, client_ip_, "http");
  upstream->version(11);
  upstream->keep_alive(true);
  upstream->prepare_payload();
  PickServingSide(*upstream);

  // The primary and the shadows at once: neither waits for the other. The mirrors are decided
  // first, so that a primary refused at once (503) still completes their pair records; the
  // primary's request is written first (DispatchMirrors posts the copies), and both are under
  // way within microseconds.
  upstream_request_ = {};  // the primary's head is buffered_request_'s (StartPrimary)
  buffered_request_ = upstream;
  dispatched_ = Clock::now();
  if (!route.mirrors.empty()) DispatchMirrors(route, upstream, dispatched_);
  if (!piece_) piece_ = std::make_unique<char[]>(kRelayChunk);
  StartPrimary();
}

namespace {

// A copy admitted by DispatchMirrors, before it is made.
struct MirrorCopy {
  MirrorRuntime* mirror;
  std::shared_ptr<PairCollector> collector;  // null without a pair sink
};
using MirrorCopies = boost::container::small_vector<MirrorCopy, 1>;
// What every pair record of one request shares besides the request itself.
struct PairHead {
  std::string id;
  int64_t ts_us = 0;
  std::string route;
  bool served_by_candidate = false;
};

// Makes and sends the admitted copies of `upstream` (the primary's request, immutable now) on
// the mirror's thread: the pair records' request halves, then one exchange per copy.
void SendMirrorCopies(const std::shared_ptr<GatewayState>& state, const MirrorCopies& copies,
                      const std::shared_ptr<const Request>& upstream, const PairHead& head,
                      Clock::time_point primary_dispatch, size_t shard, net::io_context& context) {
  // Which copies' records keep the request body (capture.body_sample, by the request id): the
  // body is copied out of the request only when one of them does.
  const auto& capture = state->config.capture;
  const bool has_body = !upstream->body().empty();
  boost::container::small_vector<bool, 1> keeps_body;
  bool any_body = false;
  for (const auto& copy : copies) {
    keeps_body.push_back(has_body && copy.collector &&
                         copy.mirror->KeepsBody(head.id, capture.body_sample));
    any_body |= keeps_body.back();
  }
  std::optional<CapturedRequest> captured;  // the same for every copy
  for (size_t i = 0; i < copies.size(); ++i) {
    const auto& copy = copies[i];
    MirrorRuntime* mirror = copy.mirror;
    const auto& config = mirror->config();
    if (copy.collector) {
      if (!captured) captured = CaptureRequest(*upstream, capture, any_body || !has_body);
      PairRecord record;
      record.id = head.id;
      record.ts_us = head.ts_us;
      record.route = head.route;
      record.mirror = config.name;
      record.served_by_candidate = head.served_by_candidate;
      // Moved into the last copy's record, copied into the others'.
      record.request = i + 1 == copies.size() ? std::move(*captured) : *captured;
      if (!keeps_body[i] && has_body) {
        record.request.body.reset();  // its size and sha256 stay
        record.request.body_truncated = false;
        mirror->CountNotCaptured(NotCaptured::kBodySampledOut);
      } else if (record.request.body_truncated) {
        mirror->CountNotCaptured(NotCaptured::kBodyTruncated);
      }
      copy.collector->SetRequest(std::move(record));
    }
    // The copy shares the primary's request and only writes a head of its own (redacted,
    // marked); without mirror_body it is a real copy with the body left out.
    std::shared_ptr<const Request> request = upstream;
    std::string shadow_head;
    if (config.mirror_body) {
      AppendShadowHead(upstream->base(), state->config.redact_headers, state->config.shadow_header,
                       &shadow_head);
    } else {
      auto bodiless = std::make_shared<Request>(upstream->base(), std::string());
      PrepareShadowHeaders(*bodiless, state->config.redact_headers, state->config.shadow_header);
      bodiless->prepare_payload();
      request = std::move(bodiless);
    }
    mirror->pool().Send(
        shard, std::move(request), config.timeout, context.get_executor(),
        [state, mirror, collector = copy.collector,
         primary_dispatch](std::shared_ptr<UpstreamResult> result) {
          mirror->Finished(*result);
          if (collector) {
            int outcome = ShadowOutcomeIndex(*result);
            auto shadow = CaptureResponse(*result, kShadowOutcomes[outcome],
                                          state->config.capture.response_headers,
                                          state->config.capture.max_body_bytes);
            shadow.send_offset_us = ToMicros(result->dispatched - primary_dispatch);
            collector->SetShadow(std::move(shadow));
          }
          state->shadows_in_flight.fetch_sub(1, std::memory_order_relaxed);
        },
        std::move(shadow_head));
  }
}

}  // namespace

void ProxySession::DispatchMirrors(RouteRuntime& route,
                                   const std::shared_ptr<const Request>& upstream,
                                   Clock::time_point primary_dispatch) {
  // Here, at once: which mirrors get a copy (sampling, the in-flight bound, a shadow that is
  // down) and a collector per copy, so that a primary refused at once still completes the pair.
  MirrorCopies copies;
  for (auto& mirror_ptr : route.mirrors) {
    MirrorRuntime* mirror = mirror_ptr.get();
    // Served by a cutover's candidate: the copy goes back to the old primary instead.
    const bool reversed = served_by_candidate_ && mirror == route.candidate_mirror;
    if (reversed) {
      if (!route.cutover->MirrorsBack()) continue;
      mirror = route.reverse_mirror.get();
    }
    const auto& config = mirror->config();
    std::string_view key;
    if (!config.hash_header.empty()) {
      auto it = upstream->find(config.hash_header);
      if (it != upstream->end()) key = it->value();
    }
    if (mirror->Admit(key, upstream->body().size()) != NotMirrored::kNone) continue;
    if (mirror->pool().Down()) {
      // The shadow is down (every endpoint ejected after connect failures): no copy, no pair
      // record, just the count, so a dead shadow costs the proxy nothing.
      mirror->FailedFast();
      continue;
    }
    std::shared_ptr<PairCollector> collector;
    if (state_->sink) {
      collector = std::make_shared<PairCollector>(state_->sink, reversed);
      collectors_.push_back(collector);
    }
    copies.push_back({mirror, std::move(collector)});
    state_->shadows_in_flight.fetch_add(1, std::memory_order_relaxed);
  }
  if (copies.empty()) return;
  // The rest of a copy's cost (its head, the pair record's request half, its exchange) is posted
  // to the mirror's thread (a shadow thread, or this one): it never runs in this event loop ahead
  // of the primary's work, which writes the primary's request before it returns. The copies go
  // out microseconds later (the pair record's send_offset_us).
  PairHead head;
  if (state_->sink) head = {request_id_, NowUnixMicros(), route.config.name, served_by_candidate_};
  size_t mirror_shard = state_->MirrorShard(shard_);
  auto& context = state_->MirrorContext(mirror_shard);
  net::post(context, [state = state_, copies = std::move(copies), upstream, head = std::move(head),
                      primary_dispatch, mirror_shard, &context] {
    SendMirrorCopies(state, copies, upstream, head, primary_dispatch, mirror_shard, context);
  });
}

void ProxySession::SendUpstreamResponse() {
  RemoveHopByHop(response_);
  response_.version(11);  // whatever the request's version (RFC 9110 section 6.2)
  response_.set("X-Request-Id", request_id_);
  int status = response_.result_int();
  if (status / 100 == 1 || status == 204 || status == 304) {
    response_.erase(http::field::content_length);
  } else if (!head_) {
    // Usually the upstream's own Content-Length is already right: kept as it is.
    auto length = std::to_string(response_.body().size());
    auto [first, end] = response_.equal_range(http::field::content_length);
    if (first == end || std::next(first) != end || std::string_view(first->value()) != length) {
      response_.content_length(response_.body().size());
    }
  }
  // For HEAD the upstream's Content-Length is kept and no body is sent.
  close_after_write_ = !keep_alive_ || draining_ || state_->draining.load();
  SetConnection(response_);
  DoWrite();
}

void ProxySession::SendError(http::status status, const std::string& message, bool close) {
  parser_.reset();
  stream_parser_.reset();
  collected_ = std::string();
  body_reservation_.Reset();
  collectors_.clear();
  response_ = Response(status, 11);
  response_.set(http::field::content_type, "application/json");
  if (!request_id_.empty()) response_.set("X-Request-Id", request_id_);
  nlohmann::json body = {{"code", static_cast<int>(status)},
                         {"type", std::string(http::obsolete_reason(status))},
                         {"message", message}};
  response_.body() = body.dump() + "\n";
  if (head_ && !close) response_.body().clear();
  response_.prepare_payload();
  close_after_write_ = close || !keep_alive_ || draining_ || state_->draining.load();
  SetConnection(response_);
  DoWrite();
}

void ProxySession::SetConnection(http::fields& fields) const {
  // The status line says HTTP/1.1 to every client; an HTTP/1.1 connection stays open unless the
  // response says close, an HTTP/1.0 one only when it says keep-alive.
  if (close_after_write_) {
    fields.set(http::field::connection, "close");
  } else if (request_version_ < 11) {
    fields.set(http::field::connection, "keep-alive");
  }
}

void ProxySession::DoWrite() {
  response_status_ = response_.result_int();
  response_bytes_ = response_.body().size();
  state_->CountResponse(route_, response_status_);
  if (state_->access_log) LogAccess();
  // Write the response within the write timeout: head and body in one gather write (the body is
  // never chunk-encoded here: it is complete, with Content-Length).
  ArmTimer(state_->config.write_timeout);
  auto handler = beast::bind_front_handler(&ProxySession::OnWrite, shared_from_this());
  if (response_.chunked()) return http::async_write(socket_, response_, std::move(handler));
  head_text_.clear();
  AppendHead(response_.base(), &head_text_);
  std::array<net::const_buffer, 2> buffers{net::buffer(head_text_), net::buffer(response_.body())};
  net::async_write(socket_, buffers, std::move(handler));
}

void ProxySession::OnWrite(beast::error_code ec, std::size_t) {
  DisarmTimer();
  response_ = {};
  if (ec) return Close();
  if (close_after_write_) return LingeringClose();
  // Reset per-request state, then wait for the next request on this connection.
  stream_parser_.reset();
  buffered_request_.reset();
  capture_.clear();
  collected_ = std::string();
  body_reservation_.Reset();
  over_budget_ = false;
  prefix_pending_ = false;
  first_piece_ = 0;
  streamed_ = false;
  head_sent_ = false;
  head_ = false;
  request_id_.clear();
  route_name_.clear();
  route_ = nullptr;
  DoWaitRequest();
}

void ProxySession::LingeringClose() {
  // Closing with unread request bytes would reset the connection and could destroy the response
  // before the client reads it: send FIN, then read and discard for a bounded time and size.
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  linger_budget_ = kLingerMaxBytes;
  ArmTimer(kLingerTime);
  DoLinger();
}

void ProxySession::DoLinger() {
  if (!linger_buffer_) linger_buffer_ = std::make_unique<std::array<char, 16384>>();
  socket_.async_read_some(net::buffer(*linger_buffer_),
                          [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                            if (ec || n >= self->linger_budget_) return self->Close();
                            self->linger_budget_ -= n;
                            self->DoLinger();
                          });
}

void ProxySession::Close() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  DisarmTimer();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
  // A pending upstream operation ends with an error (OnExchangeFailed, abandoned); a held
  // connection goes back; a wait for one is given up.
  exchange_.Abandon();
}

void ProxySession::LogAccess() {
  // From the complete request (its body read, or its head for a streamed body) to the response;
  // for one refused before that (parse errors, limits, timeouts), from its first byte.
  auto from = request_complete_ == Clock::time_point{} ? request_start_ : request_complete_;
  auto latency_us = ToMicros(Clock::now() - from);
  if (state_->config.access_log == AccessLogFormat::kJson) {
    nlohmann::json line = {
        {"ts_us", NowUnixMicros()}, {"client", client_ip_},       {"method", method_},
        {"target", target_},        {"status", response_status_}, {"bytes", response_bytes_},
        {"latency_us", latency_us}, {"route", route_name_},       {"id", request_id_}};
    state_->access_log->info(line.dump());
  } else {
    state_->access_log->info("{} \"{} {}\" {} {} {}us route={} id={}", client_ip_, method_, target_,
                             response_status_, response_bytes_, latency_us,
                             route_name_.empty() ? "-" : route_name_,
                             request_id_.empty() ? "-" : request_id_);
  }
}

// ---------------------------------------------------------------------------------------------
// The streamed path: the request body and the response body pass through one kRelayChunk buffer,
// read a piece, write it, read the next (Beast's "relay" pattern with buffer_body).

void ProxySession::StartStreamed() {
  request_complete_ = Clock::now();
  route_->requests->Increment();
  // The parser changes body type before any body byte was read (unless it was collected first,
  // StartCollecting); the body arrives piece by piece.
  if (!stream_parser_) {
    stream_parser_.emplace(std::move(*parser_));
    parser_.reset();
    // The parser's head moves into the upstream request (no copy); the parser reads the body
    // with its own framing state (and adds the trailer fields to its own, empty, head).
    upstream_request_ = {};
    upstream_request_.base() = std::move(stream_parser_->get().base());
  }

  // The upstream head: hop-by-hop headers removed, X-Forwarded-*, X-Request-Id; the client's
  // framing kept (Content-Length stays, a chunked body is sent chunked).
  RemoveHopByHop(upstream_request_);
  upstream_request_.erase(http::field::expect);
  // Only the gateway marks a request as a mirror copy.
  if (!state_->config.shadow_header.empty()) upstream_request_.erase(state_->config.shadow_header);
  request_id_ = EnsureRequestId(upstream_request_);
  SetForwardedHeaders(upstream_request_, client_ip_, "http");
  upstream_request_.version(11);
  upstream_request_.keep_alive(true);
  if (stream_parser_->chunked()) upstream_request_.chunked(true);
  PickServingSide(upstream_request_);

  // Mirrors never get a streamed body: counted sampled_out, memory_budget or body_too_large.
  uint64_t body_size =
      prefix_pending_ ? collected_.size() : stream_parser_->content_length().value_or(0);
  for (auto& mirror : route_->mirrors) {
    std::string_view key;
    const auto& header = mirror->config().hash_header;
    if (!header.empty()) {
      auto it = upstream_request_.find(header);
      if (it != upstream_request_.end()) key = it->value();
    }
    mirror->CountStreamed(key, over_budget_, body_size);
  }

  if (!piece_) piece_ = std::make_unique<char[]>(kRelayChunk);
  if (!prefix_pending_ && !TakeReadBody()) return;
  dispatched_ = Clock::now();
  StartPrimary();
}

bool ProxySession::TakeReadBody() {
  // The body bytes that arrived with the header (all of a small body) are parsed into piece_ now,
  // without I/O, so that they go upstream in one write with the head (StartPrimary).
  first_piece_ = 0;
  if (stream_parser_->is_done() || buffer_.size() == 0) return true;
  auto& body = stream_parser_->get().body();
  body.data = piece_.get();
  body.size = kRelayChunk;
  stream_parser_->eager(true);
  beast::error_code ec;
  buffer_.consume(stream_parser_->put(buffer_.data(), ec));
  if (ec == http::error::need_more || ec == http::error::need_buffer) ec = {};
  if (ec) {
    OnReadError(ec);
    return false;
  }
  first_piece_ = kRelayChunk - body.size;
  return true;
}

void ProxySession::PickServingSide(const http::fields& head) {
  Cutover* cutover = route_->cutover.get();
  served_by_candidate_ = cutover && cutover->ServesCandidate(cutover->StickyKey(head, client_ip_));
}

void ProxySession::StartPrimary() {
  // The exchange the client waits for: the route's upstream, or its cutover candidate's.
  const auto& pool = served_by_candidate_ ? route_->candidate_primary : route_->primary;
  ExchangeOptions options;
  options.deadline = dispatched_ + pool->config().total_timeout;
  options.head = head_;
  options.wait_for_connection = true;  // at max_connections: FIFO, max_pending, pending_timeout
  auto write_whole = [&](const http::request_header<>& head, net::const_buffer body) {
    // Head and body in one gather write.
    upstream_head_.clear();
    AppendHead(head, &upstream_head_);
    exchange_.StartWhole(pool, options, upstream_head_, body);
  };
  // A buffered body (mirrored requests) was re-framed with Content-Length (HandleRequest).
  if (buffered_request_) {
    return write_whole(buffered_request_->base(), net::buffer(buffered_request_->body()));
  }
  // A streamed body: the head goes with what of the body is in memory already, the collected
  // start of a body that grew past the mirrors' limit or the bytes read with the header (on a
  // retry, piece_ still holds them: no client byte was read since).
  bool done = stream_parser_->is_done();
  if (done && !prefix_pending_ && !upstream_request_.chunked()) {
    return write_whole(upstream_request_.base(), net::buffer(piece_.get(), first_piece_));
  }
  // The collected start cannot be written again (it is freed once written): no retry then.
  bool retryable = !prefix_pending_;
  if (prefix_pending_) {
    prefix_pending_ = false;
    upstream_request_.body() = {collected_.data(), collected_.size(), !done};
  } else {
    upstream_request_.body() = {first_piece_ ? piece_.get() : nullptr, first_piece_, !done};
  }
  exchange_.StartStreamed(pool, options, upstream_request_, retryable);
}

std::shared_ptr<void> ProxySession::ExchangeKeepAlive() {
  return shared_from_this();
}

void ProxySession::OnRequestWritten(bool more) {
  collected_ = std::string();  // written: its memory goes, and its share of the budget
  body_reservation_.Reset();
  if (more) DoClientPieceRead(&ProxySession::OnRequestPieceRead);
}

void ProxySession::OnRequestPieceRead(beast::error_code ec, std::size_t) {
  DisarmTimer();
  if (ClosedMidStream()) return;
  if (ec == http::error::need_buffer) ec = {};
  if (ec) {
    // The upstream got part of a request: that connection is never reused.
    exchange_.Abandon();
    return OnReadError(ec);
  }
  // Write the piece (the last one ends the body) within the exchange deadline.
  std::size_t n = kRelayChunk - stream_parser_->get().body().size;
  exchange_.SendBody(piece_.get(), n, !stream_parser_->is_done());
}

void ProxySession::OnResponsePiece(std::size_t n, bool done) {
  auto& parser = exchange_.parser();
  if (!head_sent_ && done) {
    // The whole response fit in the buffer: sent whole, with Content-Length, as before.
    route_->primary_latency->Observe(ToMicros(Clock::now() - dispatched_) / 1e6);
    if (!collectors_.empty()) {
      capture_.assign(piece_.get(), n);
      CapturePrimary(UpstreamOutcome::kOk, {});
    }
    // The parser's head moves into the response (no copy); the parser keeps its own state.
    exchange_.Finish();
    response_ = {};
    response_.base() = std::move(parser.get().base());
    response_.body().assign(piece_.get(), n);
    stream_parser_.reset();
    return SendUpstreamResponse();
  }
  if (n == 0 && !done && !head_sent_) {
    // The header arrived (or nothing of the body yet): read the first piece of the body.
    return exchange_.ReadBody(piece_.get(), kRelayChunk);
  }
  if (!head_sent_) StartRelayResponse();
  if (!collectors_.empty()) {
    // Capture one byte past the limit, so the capture knows it was cut.
    auto limit = static_cast<std::size_t>(state_->config.capture.max_body_bytes) + 1;
    if (capture_.size() < limit)
      capture_.append(piece_.get(), std::min(n, limit - capture_.size()));
  }
  // Write the piece (the head goes with the first) within the write timeout.
  relay_response_.body() = {n ? piece_.get() : nullptr, n, !done};
  response_bytes_ += n;
  ArmTimer(state_->config.write_timeout);
  http::async_write(
      socket_, *response_serializer_,
      beast::bind_front_handler(&ProxySession::OnResponsePieceWritten, shared_from_this()));
}

void ProxySession::StartRelayResponse() {
  // The head as the upstream sent it, hop-by-hop headers removed; the framing kept: a
  // Content-Length stays, a chunked body stays chunked, a body delimited by the upstream's close
  // is sent chunked (HTTP/1.0 clients: delimited by our close).
  head_sent_ = true;
  auto& parser = exchange_.parser();
  bool chunked = parser.chunked();
  bool has_length = parser.content_length().has_value();
  relay_response_ = {};
  relay_response_.base() = parser.get().base();
  RemoveHopByHop(relay_response_);
  relay_response_.version(11);
  relay_response_.set("X-Request-Id", request_id_);
  close_after_write_ = !keep_alive_ || draining_ || state_->draining.load();
  if (chunked || !has_length) {
    if (request_version_ >= 11) {
      relay_response_.chunked(true);
    } else {
      close_after_write_ = true;
    }
  }
  SetConnection(relay_response_);
  response_serializer_.emplace(relay_response_);
  response_status_ = relay_response_.result_int();
  response_bytes_ = 0;
  state_->CountResponse(route_, response_status_);
}

void ProxySession::OnResponsePieceWritten(beast::error_code ec, std::size_t) {
  DisarmTimer();
  if (ClosedMidStream()) return;
  if (ec == http::error::need_buffer) ec = {};
  if (ec) {
    // The client left or reads too slowly.
    CapturePrimary(UpstreamOutcome::kError, "client connection closed mid-response");
    return AbortStreamed();
  }
  if (!exchange_.parser().is_done()) return exchange_.ReadBody(piece_.get(), kRelayChunk);
  FinishStreamed();
}

void ProxySession::FinishStreamed() {
  exchange_.Finish();
  route_->primary_latency->Observe(ToMicros(Clock::now() - dispatched_) / 1e6);
  CapturePrimary(UpstreamOutcome::kOk, {});
  if (state_->access_log) LogAccess();
  OnWrite({}, 0);
}

void ProxySession::AbortStreamed() {
  exchange_.Abandon();
  if (state_->access_log) LogAccess();
  Close();
}

void ProxySession::OnExchangeFailed(const ExchangeFailure& failure) {
  if (failure.abandoned) {
    // The session closed while an upstream operation was pending.
    return CapturePrimary(UpstreamOutcome::kError, failure.error);
  }
  if (head_sent_) {
    // After the head went out, only a closed connection can tell the client the response is
    // incomplete.
    CapturePrimary(UpstreamOutcome::kError, "upstream " + exchange_.endpoint_name() +
                                                " mid-response: " + failure.ec.message());
    return AbortStreamed();
  }
  // Unread client body bytes would be parsed as the next request: close after the answer.
  bool close = !RequestBodyRead();
  CapturePrimary(failure.outcome, failure.error);
  switch (failure.outcome) {
    case UpstreamOutcome::kOverload:
      return SendError(http::status::service_unavailable,
                       failure.waited ? "upstream connection limit reached (no connection within "
                                        "pending_timeout)"
                                      : "upstream connection limit reached",
                       close);
    case UpstreamOutcome::kTimeout:
      return SendError(http::status::gateway_timeout, "upstream timed out", close);
    default:
      return SendError(http::status::bad_gateway, failure.error, close);
  }
}

bool ProxySession::ClosedMidStream() {
  if (phase_ != Phase::kClosed) return false;
  exchange_.Abandon();
  CapturePrimary(UpstreamOutcome::kError, "client connection closed");
  return true;
}

bool ProxySession::RequestBodyRead() const {
  return buffered_request_ || !stream_parser_ || stream_parser_->is_done();
}

void ProxySession::CapturePrimary(UpstreamOutcome outcome, std::string error) {
  // The primary's half of the pair records: the response head and the captured body prefix.
  if (collectors_.empty()) return;
  const auto& capture = state_->config.capture;
  CapturedResponse primary;
  if (outcome == UpstreamOutcome::kOk) {
    // Straight from the parser's head: no copy of it.
    const auto& head = exchange_.parser().get().base();
    primary = CaptureHead(head, capture_, PrimaryOutcome(outcome, head.result_int()),
                          capture.response_headers, capture.max_body_bytes);
  } else {
    UpstreamResult result;
    result.outcome = outcome;
    result.error = std::move(error);
    primary = CaptureResponse(result, PrimaryOutcome(result), capture.response_headers,
                              capture.max_body_bytes);
  }
  primary.latency_us = ToMicros(Clock::now() - dispatched_);
  for (auto& collector : collectors_) collector->SetPrimary(primary);
  collectors_.clear();
  capture_.clear();
}

}  // namespace sg::gateway
