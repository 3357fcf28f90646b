// annx's own persistent thread pool (no OpenMP: no oversubscription against the
// caller's own threads, no libgomp/libomp clashes inside one process).
//
// - One process-wide pool of (num_threads - 1) workers; the calling thread is the
//   remaining one and works on its own job too, so a call with threads=1 never
//   switches threads.
// - Any number of caller threads may submit jobs concurrently; jobs are served in
//   submission order and each job caps how many threads join it.
// - An exception thrown by a chunk stops the job and is rethrown on the caller.
// - Cancellation: the caller polls an optional interrupt hook (installed per thread
//   by the Python bindings to check for Ctrl-C) at most every ~50 ms; a "true"
//   cancels the remaining chunks and parallel_for throws annx::Interrupted.
// - parallel_for called from inside a worker runs inline (no nested parallelism).
#pragma once

#include <cstddef>
#include <functional>

namespace annx {

/// Returns true when the current operation should stop (e.g. Ctrl-C was pressed).
using InterruptHook = bool (*)();

/// Installs `hook` for the calling thread for the lifetime of the scope.
class InterruptScope {
 public:
  explicit InterruptScope(InterruptHook hook);
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  InterruptHook prev_;
};

/// Polls the calling thread's hook (rate-limited); throws annx::Interrupted if it fires.
/// For long single-threaded loops outside parallel_for.
void check_interrupt();

/// Number of threads annx uses by default (caller included). Initialised from
/// ANNX_NUM_THREADS, else the CPUs this process may run on (sched_getaffinity).
int get_num_threads();
/// Sets the default thread count (>= 1); the pool grows or shrinks lazily.
void set_num_threads(int n);

/// Runs fn(begin, end) over [0, n) in chunks of at most `grain` items on up to
/// `max_threads` threads (0: get_num_threads()), the caller included. Blocks until
/// every chunk is done. Chunks should take well under 50 ms so Ctrl-C stays prompt.
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn,
                  int max_threads = 0);

/// Index of the calling thread inside the current parallel_for (0 = caller); valid
/// only inside fn. Lets callers keep per-thread scratch without locks.
int worker_index();

}  // namespace annx
