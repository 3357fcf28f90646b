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
// - Progress: a long operation counts its work in a ProgressCounter; the calling
//   thread's progress hook (installed by the bindings) sees the count after each unit
//   the caller finishes itself, and parallel_for polls it at the same ~50 ms pace while
//   the caller waits for workers. Hooks only ever run on the calling thread.
// - parallel_for called from inside a worker runs inline (no nested parallelism).
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <thread>

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

/// Told that `done` of `total` units of the current operation are finished; returns
/// false to cancel it. `ctx` is the pointer given to ProgressScope.
using ProgressHook = bool (*)(void* ctx, size_t done, size_t total);

/// Installs a progress hook (and its context) for the calling thread for the lifetime
/// of the scope.
class ProgressScope {
 public:
  ProgressScope(ProgressHook hook, void* ctx);
  ~ProgressScope();
  ProgressScope(const ProgressScope&) = delete;
  ProgressScope& operator=(const ProgressScope&) = delete;

 private:
  ProgressHook prev_hook_;
  void* prev_ctx_;
};

/// Calls the calling thread's progress hook with (done, total) and throws
/// annx::Cancelled ("<what> cancelled by its progress callback at ...") when it returns
/// false. Does nothing without a hook or on a pool worker: hooks belong to the thread
/// that installed them (Python's takes the GIL). Operations that also count work on
/// workers use a ProgressCounter, which reports through this.
void report_progress(size_t done, size_t total, const char* what = "the operation");

/// The work units of one long operation (e.g. k-means iterations), counted from any
/// thread and reported through the progress hook of the thread that created it (its
/// owner, which must also destroy it: keep it on the caller's stack).
///
/// - advance() on the owner reports at once; on a pool worker it only counts, and the
///   owner's parallel_for reports the count every ~50 ms while it waits.
/// - Reports never repeat a value and never exceed `total`; finish() makes the last
///   one (total, total). An operation calls finish() before it commits its result, so
///   a cancel at the very end still undoes everything.
/// - When the hook cancels (returns false: annx::Cancelled) or throws, that exception
///   is rethrown by every later advance() or poll(), on every thread, so parallel
///   work stops at its next unit and the caller sees the hook's own exception.
class ProgressCounter {
 public:
  /// `what` names the operation in the Cancelled message ("training 'IVF1024,PQ16'").
  ProgressCounter(size_t total, std::string what);
  ~ProgressCounter();
  ProgressCounter(const ProgressCounter&) = delete;
  ProgressCounter& operator=(const ProgressCounter&) = delete;

  /// At least 1: an operation without countable units reports a single (1, 1).
  size_t total() const { return total_; }
  /// Counts `units` more done (any thread).
  void advance(size_t units = 1);
  /// Owner: reports the count if it grew since the last report (others: only rethrows
  /// a cancel).
  void poll();
  /// Owner: counts everything done and reports (total, total) unless already reported.
  void finish();

 private:
  bool on_owner() const { return std::this_thread::get_id() == owner_; }

  const size_t total_;
  const std::string what_;
  const std::thread::id owner_;
  ProgressCounter* const prev_;  // the owner's enclosing counter, restored at the end
  std::atomic<size_t> done_{0};
  size_t reported_ = 0;                 // owner only
  std::exception_ptr error_;            // written once, before cancelled_ is set
  std::atomic<bool> cancelled_{false};  // release/acquire pairs with error_
};

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
