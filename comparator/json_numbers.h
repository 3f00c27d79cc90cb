// Small conversions every aggregate's ToJson uses: one definition each.
#pragma once

#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace sg::comparator {

// num / den, 0 when den is 0.
inline double Rate(uint64_t num, uint64_t den) {
  return den ? static_cast<double>(num) / static_cast<double>(den) : 0.0;
}

// Microseconds to milliseconds.
inline double Ms(double us) {
  return us / 1000.0;
}

// A JSON number, or null when not finite (JSON has no NaN or infinity).
inline nlohmann::json Num(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace sg::comparator
