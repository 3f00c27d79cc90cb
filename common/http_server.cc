#include "common/http_server.h"

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace sg::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::string CamelReason(Status status) {
  std::string out;
  bool upper = true;
  for (char c : std::string(bhttp::obsolete_reason(status))) {
    if (c == ' ' || c == '-') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

}  // namespace

Response MakeTextResponse(const Request& request, Status status, std::string body,
                          const std::string& content_type) {
  Response response{status, request.version()};
  response.set(bhttp::field::content_type, content_type);
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

Response MakeJsonResponse(const Request& request, Status status, const nlohmann::json& body) {
  return MakeTextResponse(request, status,
                          body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                          "application/json");
}

Response MakeErrorResponse(const Request& request, Status status, const std::string& message,
                           const std::string& type) {
  nlohmann::json body = {{"code", static_cast<int>(status)},
                         {"type", type.empty() ? CamelReason(status) : type},
                         {"message", message}};
  return MakeJsonResponse(request, status, body);
}

class Session;

// Owned jointly by the server, its pending accept and its sessions, so none outlives what it uses.
struct HttpServer::Shared {
  Shared(net::io_context& io, ServerOptions options, Handler handler)
      : io(io),
        options(std::move(options)),
        handler(std::move(handler)),
        acceptor(net::make_strand(io)) {}
  net::io_context& io;
  ServerOptions options;
  Handler handler;
  tcp::acceptor acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> connections{0};
  std::atomic<uint64_t> buffered_body_bytes{0};  // held by sessions receiving a body
  // Guarded by mutex.
  std::mutex mutex;
  std::list<std::weak_ptr<Session>> sessions;
};

// One client connection: read a request, hand it to the handler, write its response, repeat.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, std::shared_ptr<HttpServer::Shared> shared)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), shared_(std::move(shared)) {
    ++shared_->connections;
    // Beast reads into the buffer's free capacity (at least 512 bytes): room for a typical
    // header and small body means one read per request instead of one per growth step.
    buffer_.reserve(16 * 1024);
  }
  ~Session() {
    ReleaseBody();
    --shared_->connections;
  }

  void Run() {
    // Start on the session's strand: every handler below runs there.
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::DoReadHeader, shared_from_this()));
  }

  // Closes the connection if it is idle (between requests); busy ones close after responding.
  void CloseIfIdle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->idle_) self->Close();
    });
  }

 private:
  void DoReadHeader() {
    if (shared_->stopping) return Close();
    idle_ = true;
    parser_.emplace();
    parser_->body_limit(shared_->options.body_limit);
    parser_->header_limit(shared_->options.header_limit);
    ArmReadTimer(shared_->options.idle_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::OnReadHeader, shared_from_this()));
  }

  void OnReadHeader(beast::error_code ec, size_t) {
    if (ec) return OnReadError(ec);
    idle_ = false;
    ArmReadTimer(shared_->options.read_timeout);
    // A Content-Length body's room is taken from the budget before a byte of it is read.
    if (!HoldBody(parser_->content_length().value_or(0))) return RefuseOverBudget();
    const auto& header = parser_->get();
    if (beast::iequals(header[bhttp::field::expect], "100-continue") && !parser_->is_done()) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(Status::continue_, 11);
      bhttp::async_write(stream_, *cont,
                         [self = shared_from_this(), cont](beast::error_code ec, size_t) {
                           if (ec) return self->OnReadError(ec);
                           self->DoReadBody();
                         });
      return;
    }
    DoReadBody();
  }

  void DoReadBody() {
    if (parser_->is_done()) return OnReadBody({}, 0);
    bhttp::async_read_some(stream_, buffer_, *parser_,
                           beast::bind_front_handler(&Session::OnReadBodySome, shared_from_this()));
  }

  void OnReadBodySome(beast::error_code ec, size_t) {
    if (ec) return OnReadBody(ec, 0);
    // A chunked body is counted as it grows (the string's capacity: what it really holds).
    if (!HoldBody(parser_->get().body().capacity())) return RefuseOverBudget();
    DoReadBody();
  }

  // Holds `bytes` of body against the server's budget in all. False when it cannot.
  bool HoldBody(uint64_t bytes) {
    const uint64_t cap = shared_->options.max_buffered_body_bytes;
    if (cap == 0 || bytes <= held_) return true;
    const uint64_t more = bytes - held_;
    uint64_t held = shared_->buffered_body_bytes.load(std::memory_order_relaxed);
    do {
      if (more > cap || held > cap - more) return false;
    } while (!shared_->buffered_body_bytes.compare_exchange_weak(held, held + more,
                                                                 std::memory_order_relaxed));
    held_ = bytes;
    return true;
  }

  void ReleaseBody() {
    shared_->buffered_body_bytes.fetch_sub(held_, std::memory_order_relaxed);
    held_ = 0;
  }

  void RefuseOverBudget() {
    timer_.cancel();
    ReleaseBody();
    parser_.reset();
    Request stub;
    stub.version(11);
    stub.keep_alive(false);
    Response response =
        MakeErrorResponse(stub, Status::service_unavailable,
                          "request bodies being received are at the server's limit; retry later");
    response.set(bhttp::field::retry_after, "1");
    response.keep_alive(false);
    Send(std::move(response));
  }

  void OnReadBody(beast::error_code ec, size_t) {
    timer_.cancel();
    if (ec) return OnReadError(ec);
    ReleaseBody();  // the handler owns the body now
    // The handler owns the time now; its own deadlines answer 504.
    Request request = parser_->release();
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    auto self = shared_from_this();
    // The slot answers 500 if the handler drops every copy of the responder without calling it.
    struct Slot {
      std::shared_ptr<Session> session;
      std::atomic<bool> done{false};
      unsigned version;
      bool keep_alive;
      ~Slot() {
        if (!done.exchange(true)) {
          Request stub;
          stub.version(version);
          stub.keep_alive(keep_alive);
          session->Post(MakeErrorResponse(stub, Status::internal_server_error,
                                          "the request handler returned no response"));
        }
      }
    };
    auto slot = std::make_shared<Slot>();
    slot->session = self;
    slot->version = version_;
    slot->keep_alive = keep_alive_;
    Responder respond = [slot](Response&& response) {
      if (slot->done.exchange(true)) return;
      slot->session->Post(std::move(response));
    };
    try {
      shared_->handler(std::move(request), std::move(respond));
    } catch (const std::exception& e) {
      // Handlers should not throw; if one does, only this request fails.
      spdlog::error("http handler threw: {}", e.what());
      Request stub;
      stub.version(version_);
      stub.keep_alive(keep_alive_);
      if (!slot->done.exchange(true)) {
        Post(MakeErrorResponse(stub, Status::internal_server_error, e.what()));
      }
    }
  }

  // Reads run under a timer rather than the stream's own timeout, which would close the socket
  // before a 408 could be written.
  void ArmReadTimer(std::chrono::milliseconds timeout) {
    timed_out_ = false;
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;  // cancelled: the read finished first
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }

  void OnReadError(beast::error_code ec) {
    timer_.cancel();
    if (timed_out_) {
      ec = beast::error::timeout;
      // Silence on an idle keep-alive connection is not an error: just close it.
      if (idle_ && buffer_.size() == 0) return Close();
    }
    if (ec == bhttp::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset) {
      return Close();
    }
    Status status = Status::bad_request;
    std::string message = "malformed request: " + ec.message();
    if (ec == bhttp::error::body_limit) {
      status = Status::payload_too_large;
      message = "request body exceeds " + std::to_string(shared_->options.body_limit) + " bytes";
    } else if (ec == bhttp::error::header_limit) {
      status = Status::request_header_fields_too_large;
      message =
          "request header exceeds " + std::to_string(shared_->options.header_limit) + " bytes";
    } else if (ec == beast::error::timeout) {
      status = Status::request_timeout;
      message = "request not received in time";
    } else if (ec == bhttp::error::partial_message) {
      return Close();  // the client went away mid-request; nobody to answer
    }
    Request stub;
    stub.version(11);
    stub.keep_alive(false);
    Response response = MakeErrorResponse(stub, status, message);
    response.keep_alive(false);
    Send(std::move(response));
  }

  // From any thread: continue on the strand.
  void Post(Response&& response) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), r = std::move(response)]() mutable {
                self->Send(std::move(r));
              });
  }

  void Send(Response&& response) {
    if (!response.has_content_length() && !response.chunked()) response.prepare_payload();
    if (!response.count(bhttp::field::server)) {
      response.set(bhttp::field::server, shared_->options.server_name);
    }
    if (shared_->stopping) response.keep_alive(false);
    response_ = std::make_shared<Response>(std::move(response));
    stream_.expires_after(shared_->options.write_timeout);
    bhttp::async_write(stream_, *response_,
                       beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    bool close = !response_->keep_alive() || response_->need_eof();
    response_.reset();
    if (ec || close) return Close();
    DoReadHeader();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  bool timed_out_ = false;
  std::shared_ptr<HttpServer::Shared> shared_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<Response> response_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool idle_ = false;
  uint64_t held_ = 0;  // body bytes held against options.max_buffered_body_bytes
};

namespace {

void DoAccept(const std::shared_ptr<HttpServer::Shared>& shared) {
  shared->acceptor.async_accept(
      net::make_strand(shared->io), [shared](beast::error_code ec, tcp::socket socket) {
        if (shared->stopping || ec == net::error::operation_aborted) return;
        if (!ec) {
          socket.set_option(tcp::no_delay(true), ec);
          auto session = std::make_shared<Session>(std::move(socket), shared);
          {
            std::lock_guard lock(shared->mutex);
            // Drop entries of closed sessions so the list stays as long as the open ones.
            shared->sessions.remove_if([](const auto& weak) { return weak.expired(); });
            shared->sessions.push_back(session);
          }
          session->Run();
        }
        DoAccept(shared);
      });
}

}  // namespace

HttpServer::HttpServer(net::io_context& io, ServerOptions options, Handler handler)
    : shared_(std::make_shared<Shared>(io, std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() {
  Stop();
}

bool HttpServer::Start(std::string* error) {
  const ServerOptions& options = shared_->options;
  tcp::acceptor& acceptor = shared_->acceptor;
  beast::error_code ec;
  auto address = net::ip::make_address(options.address, ec);
  if (ec) {
    if (error) *error = "invalid address \"" + options.address + "\": " + ec.message();
    return false;
  }
  tcp::endpoint endpoint(address, options.port);
  auto fail = [&](const char* what) {
    if (error) {
      *error = std::string(what) + " " + options.address + ":" + std::to_string(options.port) +
               ": " + ec.message();
    }
    beast::error_code ignored;
    acceptor.close(ignored);
    return false;
  };
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("reuse");
  acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  port_ = acceptor.local_endpoint(ec).port();
  DoAccept(shared_);
  return true;
}

void HttpServer::Stop() {
  if (shared_->stopping.exchange(true)) return;
  net::post(shared_->acceptor.get_executor(), [shared = shared_] {
    beast::error_code ignored;
    shared->acceptor.close(ignored);
  });
  std::lock_guard lock(shared_->mutex);
  for (auto& weak : shared_->sessions) {
    if (auto session = weak.lock()) session->CloseIfIdle();
  }
}

size_t HttpServer::ActiveConnectionsForTest() const {
  return shared_->connections.load();
}

uint64_t HttpServer::BufferedBodyBytesForTest() const {
  return shared_->buffered_body_bytes.load(std::memory_order_relaxed);
}

}  // namespace sg::http
