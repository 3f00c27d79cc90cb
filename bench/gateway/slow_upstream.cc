// The gateway bench's slow shadow: an HTTP/1.1 keep-alive server that answers every request with
// a small JSON body after a fixed delay. One thread and a timer per request, so thousands of
// waiting requests cost almost no CPU: on a machine shared with the proxy under test, the
// stand-in for a remote shadow must not steal the proxy's CPU (a Python asyncio server did).
//
//   sg-bench-slow-upstream PORT DELAY_MS [JITTER_MS]
// With JITTER_MS, each delay is drawn uniformly from DELAY_MS +- JITTER_MS.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace net = boost::asio;
using net::ip::tcp;

namespace {

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
    "{\"label\": \"slow\"}";

// The Content-Length of a request head (0 when absent); bodies are read and discarded.
size_t ContentLength(std::string_view head) {
  for (size_t at = head.find("\r\n"); at != std::string_view::npos; at = head.find("\r\n", at)) {
    at += 2;
    auto line = head.substr(at, head.find("\r\n", at) - at);
    static constexpr std::string_view kName = "content-length:";
    if (line.size() <= kName.size()) continue;
    bool match = true;
    for (size_t i = 0; i < kName.size() && match; ++i) {
      match = (line[i] | 0x20) == kName[i];
    }
    if (!match) continue;
    auto value = line.substr(kName.size());
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    size_t length = 0;
    std::from_chars(value.data(), value.data() + value.size(), length);
    return length;
  }
  return 0;
}

net::awaitable<void> Serve(tcp::socket socket, std::chrono::milliseconds delay,
                           std::chrono::milliseconds jitter) {
  std::string buffer;
  std::minstd_rand random(static_cast<unsigned>(socket.native_handle()));
  net::steady_timer timer(socket.get_executor());
  try {
    for (;;) {
      size_t head = co_await net::async_read_until(socket, net::dynamic_buffer(buffer), "\r\n\r\n",
                                                   net::use_awaitable);
      size_t total = head + ContentLength(std::string_view(buffer).substr(0, head));
      if (buffer.size() < total) {
        co_await net::async_read(socket, net::dynamic_buffer(buffer),
                                 net::transfer_exactly(total - buffer.size()), net::use_awaitable);
      }
      buffer.erase(0, total);
      auto wait = delay;
      if (jitter.count() > 0) {
        wait += std::chrono::milliseconds(
            static_cast<int64_t>(random() % (2 * jitter.count() + 1)) - jitter.count());
      }
      timer.expires_after(wait);
      co_await timer.async_wait(net::use_awaitable);
      co_await net::async_write(socket, net::buffer(kResponse.data(), kResponse.size()),
                                net::use_awaitable);
    }
  } catch (const std::exception&) {
    // The client closed the connection (or reset it): this connection is done.
  }
}

net::awaitable<void> Accept(tcp::acceptor acceptor, std::chrono::milliseconds delay,
                            std::chrono::milliseconds jitter) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(net::use_awaitable);
    socket.set_option(tcp::no_delay(true));
    net::co_spawn(acceptor.get_executor(), Serve(std::move(socket), delay, jitter), net::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: %s PORT DELAY_MS [JITTER_MS]\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[1]);
  int delay_ms = std::atoi(argv[2]);
  int jitter_ms = argc == 4 ? std::atoi(argv[3]) : 0;
  if (port <= 0 || port > 65535 || delay_ms < 0 || jitter_ms < 0 || jitter_ms > delay_ms) {
    std::fprintf(stderr, "%s: bad PORT, DELAY_MS or JITTER_MS\n", argv[0]);
    return 2;
  }
  net::io_context context(1);
  tcp::acceptor acceptor(context,
                         {net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  net::co_spawn(context,
                Accept(std::move(acceptor), std::chrono::milliseconds(delay_ms),
                       std::chrono::milliseconds(jitter_ms)),
                net::detached);
  context.run();
}
