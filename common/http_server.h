// A small asynchronous HTTP/1.1 server on Boost.Beast for the project's own endpoints (model
// server listeners, admin listeners, test upstreams). Not the gateway's proxy path, which needs
// streaming and proxy-specific framing rules.
//
// One session per connection, each on its own strand; keep-alive; `Expect: 100-continue`;
// header, body, idle and read limits; errors it detects itself (bad framing, limits, slow
// clients) are answered as JSON {"code": N, "type": "...", "message": "..."} and the connection
// is closed. The handler may answer later, from any thread: the response is posted back to the
// session's strand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json_fwd.hpp>

namespace sg::http {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Status = boost::beast::http::status;

// Sends the response to one request. Call it once, from any thread; later calls are ignored.
// If every copy is destroyed without a call, the client gets a 500 (a handler bug must not hang
// the connection).
using Responder = std::function<void(Response&&)>;
using Handler = std::function<void(Request&& request, Responder respond)>;

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;                              // 0: any free port; see HttpServer::port()
  uint64_t body_limit = 8 * 1024 * 1024;          // larger bodies: 413
  uint32_t header_limit = 16 * 1024;              // larger headers: 431
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive connection with no request
  std::chrono::milliseconds read_timeout{30000};  // from the first header byte to the full body
  std::chrono::milliseconds write_timeout{30000};
  std::string server_name = "shadowgate";  // Server header
  // Request body bytes being received at once over all of this server's connections (a
  // Content-Length body counts whole from its header, a chunked one as it grows); 0: no cap. A
  // request whose body would pass it gets 503 and its connection closes, so stalled uploads
  // cannot grow memory past it. A body handed to the handler no longer counts.
  uint64_t max_buffered_body_bytes = 0;
};

// A JSON response with Content-Type application/json; keep-alive follows `request`.
Response MakeJsonResponse(const Request& request, Status status, const nlohmann::json& body);
// TorchServe-style error body {"code": N, "type": "...", "message": "..."}; type defaults to the
// status's reason phrase in CamelCase ("Not Found" -> "NotFound").
Response MakeErrorResponse(const Request& request, Status status, const std::string& message,
                           const std::string& type = "");
// Plain-text (or any content type) response.
Response MakeTextResponse(const Request& request, Status status, std::string body,
                          const std::string& content_type = "text/plain; charset=utf-8");

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, ServerOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts accepting. False with `error` set on failure (e.g. address in use).
  bool Start(std::string* error);
  // The bound port (useful with port 0). REQUIRES: Start() succeeded.
  uint16_t port() const { return port_; }
  // Stops accepting and closes idle keep-alive connections; requests in progress are answered,
  // then their connections close. Thread-safe; idempotent.
  void Stop();

  // For the tests of the connection count and of the body budget: connections open now, and
  // body bytes held now against ServerOptions::max_buffered_body_bytes (0 without a cap).
  size_t ActiveConnectionsForTest() const;
  uint64_t BufferedBodyBytesForTest() const;

  struct Shared;  // state shared with the acceptor loop and sessions; see http_server.cc

 private:
  std::shared_ptr<Shared> shared_;
  uint16_t port_ = 0;
};

}  // namespace sg::http
