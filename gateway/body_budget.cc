#include "gateway/body_budget.h"

namespace sg::gateway {

bool BodyBudget::Take(int64_t bytes) {
  int64_t held = held_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ - held) return false;
  } while (!held_.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
  return true;
}

BodyBudget::Reservation::Reservation(Reservation&& other) noexcept
    : budget_(std::move(other.budget_)), bytes_(other.bytes_) {
  other.bytes_ = 0;
}

BodyBudget::Reservation& BodyBudget::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Reset();
    budget_ = std::move(other.budget_);
    bytes_ = other.bytes_;
    other.bytes_ = 0;
  }
  return *this;
}

bool BodyBudget::Reservation::GrowTo(int64_t bytes) {
  if (bytes <= bytes_) return true;
  if (!budget_ || !budget_->Take(bytes - bytes_)) return false;
  bytes_ = bytes;
  return true;
}

void BodyBudget::Reservation::Reset() {
  if (budget_ && bytes_ > 0) budget_->Give(bytes_);
  bytes_ = 0;
}

}  // namespace sg::gateway
