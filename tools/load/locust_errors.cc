#include "tools/load/locust_errors.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/strings.h"

namespace sg::load {

std::string PythonRepr(std::string_view text) {
  bool single = text.find('\'') != std::string_view::npos;
  bool dbl = text.find('"') != std::string_view::npos;
  char quote = single && !dbl ? '"' : '\'';
  std::string out(1, quote);
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;  // printable ASCII, and UTF-8 as Python prints printable non-ASCII
    }
  }
  return out + quote;
}

std::string LocustHttpError(int status, std::string_view reason, std::string_view url) {
  std::string kind = status < 500 ? " Client Error: " : " Server Error: ";
  return "HTTPError(" +
         PythonRepr(std::to_string(status) + kind + std::string(reason) +
                    " for url: " + std::string(url)) +
         ")";
}

std::string LocustOsError(int code) {
  // CPython's errno -> OSError subclass map (Objects/exceptions.c), the socket errors of it.
  const char* name = "OSError";
  switch (code) {
    case EPIPE:
    case ESHUTDOWN:
      name = "BrokenPipeError";
      break;
    case ECONNABORTED:
      name = "ConnectionAbortedError";
      break;
    case ECONNREFUSED:
      name = "ConnectionRefusedError";
      break;
    case ECONNRESET:
      name = "ConnectionResetError";
      break;
    case ETIMEDOUT:
      name = "TimeoutError";
      break;
    default:
      break;
  }
  return std::string(name) + "(" + std::to_string(code) + ", " + PythonRepr(std::strerror(code)) +
         ")";
}

std::string LocustRemoteDisconnected() {
  return "RemoteDisconnected('Remote end closed connection without response')";
}

std::string LocustConnectTimeout(std::string_view host, double timeout_s) {
  return "ConnectTimeoutError(<urllib3.connection.HTTPConnection object at 0x....>, " +
         PythonRepr("Connection to " + std::string(host) +
                    " timed out. (connect timeout=" + FormatDouble(timeout_s) + ")") +
         ")";
}

std::string LocustReadTimeout(std::string_view host, std::string_view port, double timeout_s) {
  return "ReadTimeout(ReadTimeoutError(" +
         PythonRepr("HTTPConnectionPool(host=" + PythonRepr(host) + ", port=" + std::string(port) +
                    "): Read timed out. (read timeout=" + FormatDouble(timeout_s) + ")") +
         "))";
}

}  // namespace sg::load
