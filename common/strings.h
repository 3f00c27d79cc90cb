// Small string helpers shared by the modules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

// Shortest text that reads back as the same double; NaN, +Inf and -Inf as Prometheus writes them.
std::string FormatDouble(double value);

// Unix epoch microseconds as UTC with milliseconds: "2026-12-07T08:30:00.123Z".
std::string FormatUtcMicros(int64_t unix_us);

// Lower-cases ASCII letters.
std::string ToLowerAscii(std::string_view text);

// Splits on `separator`, keeping empty fields.
std::vector<std::string> Split(std::string_view text, char separator);

// Removes leading and trailing spaces and tabs.
std::string_view Trim(std::string_view text);

}  // namespace sg
