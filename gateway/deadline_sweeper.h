// DeadlineSweeper: one per shard. Objects with a deadline (upstream exchanges) register here and
// the shard's sweeper timer checks them every tick, instead of one timer operation per socket
// operation (each of which costs a timer-queue insert, a cancel and an extra handler run).
#pragma once

#include <chrono>
#include <mutex>
#include <unordered_set>

namespace sg::gateway {

class Deadlined {
 public:
  virtual ~Deadlined() = default;
  // Called on the shard's thread; cancels the pending operation when its deadline passed.
  virtual void CheckDeadline(std::chrono::steady_clock::time_point now) = 0;
};

class DeadlineSweeper {
 public:
  void Add(Deadlined* item) {
    std::lock_guard lock(mutex_);
    items_.insert(item);
  }
  // REQUIRES: called before `item` is destroyed (its destructor is the usual place).
  void Remove(Deadlined* item) {
    std::lock_guard lock(mutex_);
    items_.erase(item);
  }
  // REQUIRES: called on the shard's thread.
  void CheckAll(std::chrono::steady_clock::time_point now) {
    std::lock_guard lock(mutex_);
    for (auto* item : items_) item->CheckDeadline(now);
  }

 private:
  // Guarded by mutex_ (an item may be destroyed on another thread).
  std::mutex mutex_;
  std::unordered_set<Deadlined*> items_;
};

}  // namespace sg::gateway
