// Boost's assertion handler for the fuzz build (BOOST_ENABLE_ASSERT_HANDLER): a failed
// BOOST_ASSERT aborts, so libFuzzer reports it, except one known to be wrong.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <boost/assert.hpp>

namespace {

// Beast 1.81's basic_parser::parse_chunk_header asserts `n >= 5` when it comes back to a last
// chunk whose trailer is incomplete, but 4 bytes ("0\r\n" and one more) are possible there and
// the code after it handles them (boostorg/beast#2861, fixed in Boost 1.86). Our builds define
// NDEBUG, so production never checks it; the fuzz build carries on as production does.
bool IsKnownWrong(const char* expr, const char* file) {
  return std::strcmp(expr, "n >= 5") == 0 &&
         std::strstr(file, "boost/beast/http/impl/basic_parser.ipp") != nullptr;
}

}  // namespace

namespace boost {

void assertion_failed(const char* expr, const char* function, const char* file, long line) {
  if (IsKnownWrong(expr, file)) return;
  std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed.\n", file, line, function, expr);
  std::abort();
}

void assertion_failed_msg(const char* expr, const char* msg, const char* function, const char* file,
                          long line) {
  if (IsKnownWrong(expr, file)) return;
  std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed: %s\n", file, line, function, expr, msg);
  std::abort();
}

}  // namespace boost
