#include "annx/common/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "annx/common/error.h"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace annx {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(50);

thread_local InterruptHook t_hook = nullptr;
thread_local bool t_in_worker = false;
thread_local int t_worker_index = 0;
thread_local ProgressHook t_progress_hook = nullptr;
thread_local void* t_progress_ctx = nullptr;
thread_local ProgressCounter* t_progress = nullptr;  // innermost counter this thread owns

struct Job {
  const std::function<void(size_t, size_t)>* fn;
  size_t n, grain, nchunks;
  std::atomic<size_t> next{0};
  std::atomic<bool> cancel{false};
  int max_workers;           // workers (besides the caller) allowed to join
  int joined = 0;            // guarded by the pool mutex
  int active = 0;            // guarded by the pool mutex
  std::exception_ptr error;  // guarded by the pool mutex
  std::condition_variable done_cv;

  // Runs chunks until none is left (chunks claimed after a cancel are skipped).
  void run_chunks(std::mutex& m) {
    for (;;) {
      const size_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) return;
      if (cancel.load(std::memory_order_relaxed)) continue;  // drain without running
      const size_t b = c * grain, e = b + grain < n ? b + grain : n;
      try {
        (*fn)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m);
        if (!error) error = std::current_exception();
        cancel.store(true, std::memory_order_relaxed);
      }
    }
  }
};

int default_threads() {
  if (const char* env = std::getenv("ANNX_NUM_THREADS")) {
    const int v = std::atoi(env);
    if (v >= 1) return v;
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int c = CPU_COUNT(&set);
    if (c >= 1) return c;
  }
#endif
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

class Pool {
 public:
  explicit Pool(int threads) : target_(threads) {}

  // Workers are detached-by-design only at process exit; normally they are joined.
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_)
      if (t.joinable()) t.join();
  }

  int threads() const { return target_.load(); }
  void set_threads(int n) { target_.store(n); }

  void run(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn, int max_threads) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    const size_t nchunks = (n + grain - 1) / grain;
    int want = max_threads > 0 ? max_threads : target_.load();
    if (static_cast<size_t>(want) > nchunks) want = static_cast<int>(nchunks);
    if (want <= 1 || t_in_worker) {
      run_inline(n, grain, fn);
      return;
    }
    Job job;
    job.fn = &fn;
    job.n = n;
    job.grain = grain;
    job.nchunks = nchunks;
    job.max_workers = want - 1;
    {
      std::lock_guard<std::mutex> lk(m_);
      ensure_workers_locked(want - 1);
      queue_.push_back(&job);
    }
    cv_.notify_all();

    // The caller works too, polling for interrupts between its chunks.
    auto last_poll = Clock::now();
    bool interrupted = false;
    for (;;) {
      const size_t c = job.next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) break;
      if (job.cancel.load(std::memory_order_relaxed)) continue;
      const size_t b = c * grain, e = b + grain < n ? b + grain : n;
      try {
        fn(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!job.error) job.error = std::current_exception();
        job.cancel.store(true);
      }
      if ((t_hook || t_progress) && Clock::now() - last_poll >= kPollInterval) {
        last_poll = Clock::now();
        poll_caller(job, interrupted);
      }
    }
    std::unique_lock<std::mutex> lk(m_);
    remove_locked(&job);
    while (job.active > 0) {
      if ((t_hook || t_progress) && !job.cancel.load()) {
        job.done_cv.wait_for(lk, kPollInterval);
        if (job.active == 0) break;
        lk.unlock();
        poll_caller(job, interrupted);
        lk.lock();
      } else {
        job.done_cv.wait(lk);
      }
    }
    if (job.error) std::rethrow_exception(job.error);
    if (interrupted) throw Interrupted("interrupted");
  }

 private:
  // The caller's periodic checks (without the pool mutex): Ctrl-C, and the progress of
  // work its workers did. A progress hook's exception (a cancel, or one raised by a
  // Python callback) is handled like a chunk's: it stops the job and is rethrown once
  // every worker has left it.
  void poll_caller(Job& job, bool& interrupted) {
    if (t_hook && !interrupted && t_hook()) {
      interrupted = true;
      job.cancel.store(true);
    }
    if (!t_progress || job.cancel.load()) return;
    try {
      t_progress->poll();
    } catch (...) {
      std::lock_guard<std::mutex> lk(m_);
      if (!job.error) job.error = std::current_exception();
      job.cancel.store(true);
    }
  }

  void run_inline(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    auto last_poll = Clock::now();
    // Inside this inline run the calling thread is thread 0 of a one-thread job.
    struct IndexGuard {
      int saved = t_worker_index;
      IndexGuard() { t_worker_index = 0; }
      ~IndexGuard() { t_worker_index = saved; }
    } guard;
    for (size_t b = 0; b < n; b += grain) {
      fn(b, b + grain < n ? b + grain : n);
      if ((t_hook || t_progress) && !t_in_worker && Clock::now() - last_poll >= kPollInterval) {
        last_poll = Clock::now();
        if (t_hook && t_hook()) throw Interrupted("interrupted");
        if (t_progress) t_progress->poll();
      }
    }
  }

  void ensure_workers_locked(int needed) {
    while (static_cast<int>(workers_.size()) < needed) {
      const int idx = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, idx] { worker_loop(idx); });
    }
  }

  void remove_locked(Job* job) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it)
      if (*it == job) {
        queue_.erase(it);
        return;
      }
  }

  void worker_loop(int idx) {
    t_in_worker = true;
    t_worker_index = idx;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      Job* job = nullptr;
      cv_.wait(lk, [&] {
        if (stop_) return true;
        for (Job* j : queue_)
          if (j->joined < j->max_workers && idx <= j->max_workers) {
            job = j;
            return true;
          }
        return false;
      });
      if (stop_) return;
      ++job->joined;
      ++job->active;
      // Once every allowed worker joined, nobody else needs to see the job.
      if (job->joined >= job->max_workers) remove_locked(job);
      lk.unlock();
      job->run_chunks(m_);
      lk.lock();
      // The caller may return (destroying the job) as soon as active hits 0 and
      // it holds the mutex again, so nothing touches the job after this block.
      if (--job->active == 0) job->done_cv.notify_all();
    }
  }

  std::atomic<int> target_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
};

Pool* g_pool = nullptr;
std::once_flag g_once;

#if defined(__linux__)
void after_fork_in_child() {
  // The child has none of the parent's worker threads; its pool (and maybe a locked
  // mutex) is abandoned on purpose and a fresh one is created.
  g_pool = new Pool(g_pool ? g_pool->threads() : default_threads());
}
#endif

Pool& pool() {
  std::call_once(g_once, [] {
    g_pool = new Pool(default_threads());  // never destroyed: workers may outlive statics
#if defined(__linux__)
    pthread_atfork(nullptr, nullptr, &after_fork_in_child);
#endif
  });
  return *g_pool;
}

}  // namespace

InterruptScope::InterruptScope(InterruptHook hook) : prev_(t_hook) { t_hook = hook; }
InterruptScope::~InterruptScope() { t_hook = prev_; }

void check_interrupt() {
  thread_local Clock::time_point last = Clock::now();
  if (!t_hook || t_in_worker) return;
  const auto now = Clock::now();
  if (now - last < kPollInterval) return;
  last = now;
  if (t_hook()) throw Interrupted("interrupted");
}

ProgressScope::ProgressScope(ProgressHook hook, void* ctx)
    : prev_hook_(t_progress_hook), prev_ctx_(t_progress_ctx) {
  t_progress_hook = hook;
  t_progress_ctx = ctx;
}
ProgressScope::~ProgressScope() {
  t_progress_hook = prev_hook_;
  t_progress_ctx = prev_ctx_;
}

void report_progress(size_t done, size_t total, const char* what) {
  if (!t_progress_hook || t_in_worker) return;
  if (!t_progress_hook(t_progress_ctx, done, total))
    throw Cancelled(
        detail::concat(what, " cancelled by its progress callback at ", done, " of ", total));
}

ProgressCounter::ProgressCounter(size_t total, std::string what)
    : total_(total > 0 ? total : 1),
      what_(std::move(what)),
      owner_(std::this_thread::get_id()),
      prev_(t_progress) {
  t_progress = this;
}

ProgressCounter::~ProgressCounter() { t_progress = prev_; }

void ProgressCounter::advance(size_t units) {
  done_.fetch_add(units, std::memory_order_relaxed);
  if (on_owner()) {
    poll();
  } else if (cancelled_.load(std::memory_order_acquire)) {
    std::rethrow_exception(error_);
  }
}

void ProgressCounter::poll() {
  if (cancelled_.load(std::memory_order_acquire)) std::rethrow_exception(error_);
  if (!on_owner()) return;
  const size_t done = std::min(done_.load(std::memory_order_relaxed), total_);
  if (done <= reported_) return;
  reported_ = done;
  try {
    report_progress(done, total_, what_.c_str());
  } catch (...) {
    // Kept for the workers: they rethrow it at their next unit, so whichever thread
    // stops the parallel job first, the caller gets this exception.
    error_ = std::current_exception();
    cancelled_.store(true, std::memory_order_release);
    throw;
  }
}

void ProgressCounter::finish() {
  done_.store(total_, std::memory_order_relaxed);
  poll();
}

int get_num_threads() { return pool().threads(); }

void set_num_threads(int n) {
  ANNX_CHECK(InvalidArgument, n >= 1, "number of threads must be >= 1, got ", n);
  pool().set_threads(n);
}

void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn,
                  int max_threads) {
  ANNX_CHECK(InvalidArgument, max_threads >= 0, "threads must be >= 1, got ", max_threads);
  pool().run(n, grain, fn, max_threads);
}

int worker_index() { return t_worker_index; }

}  // namespace annx
