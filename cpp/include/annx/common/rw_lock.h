// A reader/writer lock that does not starve writers.
//
// std::shared_mutex on glibc prefers readers: with searches from several threads
// overlapping without pause, an add or remove could wait forever. Here a writer first
// takes `gate_`, which new readers must pass through, so it waits only for the readers
// already inside. Readers pay one uncontended mutex lock/unlock per call.
#pragma once

#include <mutex>
#include <shared_mutex>

namespace annx {

class RwLock {
 public:
  void lock() {
    std::lock_guard g(gate_);
    mu_.lock();
  }
  void unlock() { mu_.unlock(); }
  void lock_shared() {
    {
      std::lock_guard g(gate_);  // blocks while a writer waits or runs
    }
    mu_.lock_shared();
  }
  void unlock_shared() { mu_.unlock_shared(); }

 private:
  std::mutex gate_;
  std::shared_mutex mu_;
};

}  // namespace annx
