#include "tools/load/locust_errors.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace sg::load {
namespace {

TEST(LocustErrorsTest, PythonReprQuotesAsPython) {
  EXPECT_EQ(PythonRepr("plain"), "'plain'");
  EXPECT_EQ(PythonRepr("it's"), "\"it's\"");              // ' alone: double quotes
  EXPECT_EQ(PythonRepr("a\"b"), "'a\"b'");                // " alone: single quotes
  EXPECT_EQ(PythonRepr("it's \"x\""), "'it\\'s \"x\"'");  // both: single, ' escaped
  EXPECT_EQ(PythonRepr("a\\b\n\r\t\x01\x7f"), "'a\\\\b\\n\\r\\t\\x01\\x7f'");
  EXPECT_EQ(PythonRepr("caf\xc3\xa9"), "'caf\xc3\xa9'");
}

// Each as Locust 2.12.1 (HttpUser, requests 2.28) wrote it in _failures.csv against a real
// server: a 503, a 418 with no reason phrase, a reset, a close without response, a 1 s read
// timeout, a refused port and a full listen backlog with a 1 s connect timeout.
TEST(LocustErrorsTest, TextsAreLocusts) {
  EXPECT_EQ(LocustHttpError(503, "Service Unavailable", "http://127.0.0.1:18911/fail"),
            "HTTPError('503 Server Error: Service Unavailable for url: "
            "http://127.0.0.1:18911/fail')");
  EXPECT_EQ(LocustHttpError(418, "", "http://127.0.0.1:18911/teapot"),
            "HTTPError('418 Client Error:  for url: http://127.0.0.1:18911/teapot')");
  EXPECT_EQ(LocustOsError(ECONNRESET), "ConnectionResetError(104, 'Connection reset by peer')");
  EXPECT_EQ(LocustOsError(ECONNREFUSED), "ConnectionRefusedError(111, 'Connection refused')");
  EXPECT_EQ(LocustOsError(EPIPE), "BrokenPipeError(32, 'Broken pipe')");
  EXPECT_EQ(LocustOsError(EHOSTUNREACH), "OSError(113, 'No route to host')");
  EXPECT_EQ(LocustRemoteDisconnected(),
            "RemoteDisconnected('Remote end closed connection without response')");
  EXPECT_EQ(LocustReadTimeout("127.0.0.1", "18911", 1),
            "ReadTimeout(ReadTimeoutError(\"HTTPConnectionPool(host='127.0.0.1', port=18911): "
            "Read timed out. (read timeout=1)\"))");
  EXPECT_EQ(LocustReadTimeout("::1", "80", 2.5),
            "ReadTimeout(ReadTimeoutError(\"HTTPConnectionPool(host='::1', port=80): "
            "Read timed out. (read timeout=2.5)\"))");
  EXPECT_EQ(LocustConnectTimeout("127.0.0.1", 1),
            "ConnectTimeoutError(<urllib3.connection.HTTPConnection object at 0x....>, "
            "'Connection to 127.0.0.1 timed out. (connect timeout=1)')");
}

}  // namespace
}  // namespace sg::load
