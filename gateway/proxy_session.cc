#include "gateway/proxy_session.h"

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "common/strings.h"
#include "gateway/header_rules.h"

namespace sg::gateway {

using Clock = std::chrono::steady_clock;

namespace {

int64_t ToMicros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view View(boost::beast::string_view text) {
  return {text.data(), text.size()};
}

}  // namespace

ProxySession::ProxySession(tcp::socket socket, std::shared_ptr<GatewayState> state, size_t shard)
    : socket_(std::move(socket)), state_(std::move(state)), shard_(shard) {
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
  // A passed deadline cancels the pending socket operation, whose handler sees timed_out_.
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
  phase_ = Phase::kReading;
  // Read the request header within the header timeout and the header size limit.
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(state_->config.max_header_bytes));
  parser_->body_limit(static_cast<uint64_t>(state_->config.max_request_body_bytes));
  ArmTimer(state_->config.client_header_timeout);
  http::async_read_header(
      socket_, buffer_, *parser_,
      beast::bind_front_handler(&ProxySession::OnReadHeader, shared_from_this()));
}

void ProxySession::OnReadHeader(beast::error_code ec, std::size_t) {
  DisarmTimer();
  if (ec) return OnReadError(ec);
  const auto& request = parser_->get();
  if (auto problem = CheckRequestFraming(request.base()); !problem.empty()) {
    state_->metrics.client_errors.WithLabels({"bad_framing"}).Increment();
    return SendError(http::status::bad_request, problem, /*close=*/true);
  }
  if (parser_->is_done()) return HandleRequest();
  auto expect = request.find(http::field::expect);
  if (expect != request.end() && ToLowerAscii(View(expect->value())) == "100-continue") {
    // The client waits for this before sending its body.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    ArmTimer(state_->config.write_timeout);
    net::async_write(
        socket_, net::buffer(kContinue.data(), kContinue.size()),
        beast::bind_front_handler(&ProxySession::OnContinueWritten, shared_from_this()));
    return;
  }
  DoReadBody();
}

void ProxySession::OnContinueWritten(beast::error_code ec, std::size_t) {
  DisarmTimer();
  if (ec) return Close();
  DoReadBody();
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
  HandleRequest();
}

void ProxySession::OnReadError(beast::error_code ec) {
  bool got_some = parser_ && (parser_->got_some() || buffer_.size() > 0);
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

void ProxySession::HandleRequest() {
  phase_ = Phase::kProxying;
  request_complete_ = Clock::now();
  const auto& request = parser_->get();
  request_version_ = request.version();
  keep_alive_ = request.keep_alive();
  head_ = request.method() == http::verb::head;
  method_ = std::string(View(request.method_string()));
  target_ = std::string(View(request.target()));
  std::string_view path = target_;
  path = path.substr(0, path.find('?'));
  auto host = request.find(http::field::host);
  int index = state_->routes.Match(host == request.end() ? "" : View(host->value()), path, method_);
  if (index < 0) {
    route_name_.clear();
    route_ = nullptr;
    request_id_.clear();
    parser_.reset();
    return SendError(http::status::not_found, "no route for this request", false);
  }
  auto& route = state_->route_runtimes[static_cast<size_t>(index)];
  route_ = &route;
  route_name_ = route.config.name;
  route.requests->Increment();

  // The upstream copy: hop-by-hop headers removed, X-Forwarded-*, X-Request-Id, fresh framing.
  auto upstream = std::make_shared<Request>(parser_->release());
  parser_.reset();
  RemoveHopByHop(*upstream);
  upstream->erase(http::field::expect);
  request_id_ = EnsureRequestId(*upstream);
  SetForwardedHeaders(*upstream, client_ip_, "http");
  upstream->version(11);
  upstream->keep_alive(true);
  upstream->prepare_payload();

  // The primary first, then the shadows at once: neither waits for the other.
  const auto primary_dispatch = Clock::now();
  route.primary->Send(shard_, upstream, route.primary->config().total_timeout,
                      socket_.get_executor(),
                      beast::bind_front_handler(&ProxySession::OnPrimary, shared_from_this()));
  if (!route.mirrors.empty()) DispatchMirrors(route, upstream, primary_dispatch);
}

void ProxySession::DispatchMirrors(RouteRuntime& route,
                                   const std::shared_ptr<const Request>& upstream,
                                   Clock::time_point primary_dispatch) {
  std::shared_ptr<const CapturedRequest> captured;
  for (auto& mirror_ptr : route.mirrors) {
    MirrorRuntime* mirror = mirror_ptr.get();
    const auto& config = mirror->config();
    std::string_view key;
    if (!config.hash_header.empty()) {
      auto it = upstream->find(config.hash_header);
      if (it != upstream->end()) key = View(it->value());
    }
    if (mirror->Admit(key, upstream->body().size()) != NotMirrored::kNone) continue;
    if (mirror->pool().Down()) {
      // The shadow is down (every endpoint ejected after connect failures): no copy, no pair
      // record, just the count, so a dead shadow costs the proxy nothing.
      mirror->FailedFast();
      continue;
    }

    // A deep copy: the shadow exchange owns its request (fire and forget).
    auto shadow = std::make_shared<Request>(*upstream);
    PrepareShadowHeaders(*shadow, state_->config.redact_headers, state_->config.shadow_header);
    if (!config.mirror_body) {
      shadow->body().clear();
      shadow->prepare_payload();
    }
    std::shared_ptr<PairCollector> collector;
    if (state_->sink) {
      if (!captured) {
        auto request = std::make_shared<CapturedRequest>();
        request->method = method_;
        request->target = target_;
        const auto& body = upstream->body();
        request->size = body.size();
        request->sha256 = Sha256Hex(body);
        for (const auto& name : state_->config.capture.request_headers) {
          auto it = upstream->find(name);
          if (it != upstream->end()) request->headers[name] = std::string(View(it->value()));
        }
        auto limit = static_cast<size_t>(state_->config.capture.max_body_bytes);
        request->body = body.substr(0, std::min(limit, body.size()));
        request->body_truncated = body.size() > limit;
        captured = std::move(request);
      }
      PairRecord record;
      record.id = request_id_;
      record.ts_us = NowUnixMicros();
      record.route = route.config.name;
      record.mirror = config.name;
      record.request = *captured;
      collector = std::make_shared<PairCollector>(state_->sink, std::move(record));
      collectors_.push_back(collector);
    }
    state_->shadows_in_flight.fetch_add(1, std::memory_order_relaxed);
    auto state = state_;
    mirror->pool().Send(
        shard_, shadow, config.timeout, socket_.get_executor(),
        [state, mirror, collector, primary_dispatch](std::shared_ptr<UpstreamResult> result) {
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
        });
  }
}

void ProxySession::OnPrimary(std::shared_ptr<UpstreamResult> result) {
  if (result->outcome == UpstreamOutcome::kOk) {
    route_->primary_latency->Observe(ToMicros(result->completed - result->dispatched) / 1e6);
  }
  if (!collectors_.empty()) {
    auto primary =
        CaptureResponse(*result, PrimaryOutcome(*result), state_->config.capture.response_headers,
                        state_->config.capture.max_body_bytes);
    for (auto& collector : collectors_) collector->SetPrimary(primary);
    collectors_.clear();
  }
  switch (result->outcome) {
    case UpstreamOutcome::kOk:
      break;
    case UpstreamOutcome::kTimeout:
      return SendError(http::status::gateway_timeout, "upstream timed out", false);
    case UpstreamOutcome::kOverload:
      return SendError(http::status::service_unavailable, "upstream connection limit reached",
                       false);
    default:
      return SendError(http::status::bad_gateway, result->error, false);
  }
  response_ = std::move(result->response);
  RemoveHopByHop(response_);
  response_.version(request_version_);
  response_.set("X-Request-Id", request_id_);
  int status = response_.result_int();
  if (status / 100 == 1 || status == 204 || status == 304) {
    response_.erase(http::field::content_length);
  } else if (!head_) {
    response_.content_length(response_.body().size());
  }
  // For HEAD the upstream's Content-Length is kept and no body is sent.
  close_after_write_ = !keep_alive_ || draining_ || state_->draining.load();
  response_.keep_alive(!close_after_write_);
  DoWrite();
}

void ProxySession::SendError(http::status status, const std::string& message, bool close) {
  parser_.reset();
  collectors_.clear();
  response_ = Response(status, request_version_ == 10 ? 10 : 11);
  response_.set(http::field::content_type, "application/json");
  if (!request_id_.empty()) response_.set("X-Request-Id", request_id_);
  nlohmann::json body = {{"code", static_cast<int>(status)},
                         {"type", std::string(View(http::obsolete_reason(status)))},
                         {"message", message}};
  response_.body() = body.dump() + "\n";
  if (head_ && !close) response_.body().clear();
  response_.prepare_payload();
  close_after_write_ = close || !keep_alive_ || draining_ || state_->draining.load();
  response_.keep_alive(!close_after_write_);
  DoWrite();
}

void ProxySession::DoWrite() {
  phase_ = Phase::kWriting;
  state_->CountResponse(route_, response_.result_int());
  if (state_->access_log) LogAccess();
  // Write the response within the write timeout.
  ArmTimer(state_->config.write_timeout);
  http::async_write(socket_, response_,
                    beast::bind_front_handler(&ProxySession::OnWrite, shared_from_this()));
}

void ProxySession::OnWrite(beast::error_code ec, std::size_t) {
  DisarmTimer();
  response_ = {};
  if (ec) return Close();
  if (close_after_write_) return LingeringClose();
  // Reset per-request state, then wait for the next request on this connection.
  head_ = false;
  request_id_.clear();
  route_name_.clear();
  route_ = nullptr;
  DoWaitRequest();
}

void ProxySession::LingeringClose() {
  // Closing with unread request bytes would reset the connection and could destroy the response
  // before the client reads it: send FIN, then read and discard for a bounded time and size.
  phase_ = Phase::kClosing;
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
}

void ProxySession::LogAccess() {
  auto latency_us = ToMicros(Clock::now() - request_complete_);
  if (state_->config.access_log == AccessLogFormat::kJson) {
    nlohmann::json line = {{"ts_us", NowUnixMicros()},
                           {"client", client_ip_},
                           {"method", method_},
                           {"target", target_},
                           {"status", response_.result_int()},
                           {"bytes", response_.body().size()},
                           {"latency_us", latency_us},
                           {"route", route_name_},
                           {"id", request_id_}};
    state_->access_log->info(line.dump());
  } else {
    state_->access_log->info("{} \"{} {}\" {} {} {}us route={} id={}", client_ip_, method_, target_,
                             response_.result_int(), response_.body().size(), latency_us,
                             route_name_.empty() ? "-" : route_name_,
                             request_id_.empty() ? "-" : request_id_);
  }
}

}  // namespace sg::gateway
