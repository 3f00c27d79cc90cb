// The failure texts Locust's HttpUser writes in PREFIX_failures.csv (its "Error" column), for the
// failures sg-load can have: StatsError.parse_error(exception), i.e. Python's repr() of the
// exception that Locust's requests-based client records, with object addresses as "0x....".
// Recorded from Locust 2.12.1 (Debian's python3-locust) against a real server: see
// docs/harness.md (sg-load, "Failures").
#pragma once

#include <string>
#include <string_view>

namespace sg::load {

// Python's repr() of a str: '...' (or "..." when the text has ' and no "), with \\, \n, \r, \t
// and other control bytes escaped as Python escapes them.
std::string PythonRepr(std::string_view text);

// A status >= 400: requests' raise_for_status():
// HTTPError('503 Server Error: Service Unavailable for url: http://127.0.0.1:8080/p').
// `reason` is the server's reason phrase, `url` the URL as requests normalises it.
std::string LocustHttpError(int status, std::string_view reason, std::string_view url);

// A socket error with errno `code`, as Python names it: ConnectionRefusedError(111, 'Connection
// refused'), ConnectionResetError(104, ...), BrokenPipeError(32, ...), ..., else OSError(N, ...).
std::string LocustOsError(int code);

// The connection closed before any byte of the response (http.client's RemoteDisconnected).
std::string LocustRemoteDisconnected();

// The per-request timeout while connecting, and after connecting (requests' ReadTimeout), with
// the timeout written as Python writes the number (1, 1.5).
std::string LocustConnectTimeout(std::string_view host, double timeout_s);
std::string LocustReadTimeout(std::string_view host, std::string_view port, double timeout_s);

}  // namespace sg::load
