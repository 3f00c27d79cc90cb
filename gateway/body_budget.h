// BodyBudget: one cap on the request body bytes held in memory over all connections
// (`max_buffered_body_bytes`): bodies buffered for mirroring and chunked bodies being collected.
// A session reserves a body's room before it holds it; what the budget cannot hold is streamed
// to the primary instead and not mirrored (counted `memory_budget`). Streaming needs no body
// memory (one fixed buffer per connection), so a request is never refused for the budget.
// Lock-free; thread-safe. Reservations may outlive the session that made them (a buffered body
// shared with mirror copies on shadow threads): they keep the budget alive.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace sg::gateway {

class BodyBudget : public std::enable_shared_from_this<BodyBudget> {
 public:
  // Bytes of one body held against the budget; given back on destruction (or Reset). Move-only;
  // not thread-safe itself (one owner at a time).
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept;
    Reservation& operator=(Reservation&& other) noexcept;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation() { Reset(); }

    // Holds `bytes` in all (never shrinks). False, and unchanged, when the budget cannot give
    // the difference.
    bool GrowTo(int64_t bytes);
    void Reset();
    int64_t bytes() const { return bytes_; }

   private:
    friend class BodyBudget;
    explicit Reservation(std::shared_ptr<BodyBudget> budget) : budget_(std::move(budget)) {}
    std::shared_ptr<BodyBudget> budget_;
    int64_t bytes_ = 0;
  };

  // REQUIRES: made by std::make_shared (reservations share it).
  explicit BodyBudget(int64_t limit) : limit_(limit) {}

  // An empty reservation against this budget.
  Reservation Reserve() { return Reservation(shared_from_this()); }
  int64_t held() const { return held_.load(std::memory_order_relaxed); }
  int64_t limit() const { return limit_; }

 private:
  bool Take(int64_t bytes);
  void Give(int64_t bytes) { held_.fetch_sub(bytes, std::memory_order_relaxed); }

  const int64_t limit_;
  std::atomic<int64_t> held_{0};
};

}  // namespace sg::gateway
