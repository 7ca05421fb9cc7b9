#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace usclip {
namespace {

int default_threads() {
  if (const char* env = std::getenv("USCLIP_NUM_THREADS")) {
    int v = std::atoi(env);
    if (v >= 1) return v;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

std::atomic<int> g_threads{0};

// One job at a time: callers serialise on job_mutex_, workers pull chunk indices.
class Pool {
 public:
  static Pool& get() {
    static Pool p;
    return p;
  }

  void run(size_t chunks, const std::function<void(size_t)>& chunk_fn, int threads) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    ensure_workers(threads - 1);
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &chunk_fn;
      total_ = chunks;
      next_.store(0);
      done_ = 0;
      error_ = nullptr;
      active_workers_ = std::min<size_t>(static_cast<size_t>(threads - 1), chunks - 1);
      ++generation_;
    }
    cv_.notify_all();
    work();  // the caller works too
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [&] { return done_ == total_ && busy_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  void ensure_workers(int want) {
    while (static_cast<int>(workers_.size()) < want) {
      workers_.emplace_back([this] { loop(); });
    }
  }

  void work() {
    for (;;) {
      size_t i = next_.fetch_add(1);
      if (i >= total_) return;
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(m_);
      if (++done_ == total_) done_cv_.notify_all();
    }
  }

  void loop() {
    size_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || (generation_ != seen && fn_ != nullptr); });
        if (stop_) return;
        seen = generation_;
        ++busy_;
      }
      work();
      std::lock_guard<std::mutex> lk(m_);
      --busy_;
      if (busy_ == 0 && done_ == total_) done_cv_.notify_all();
    }
  }

  std::mutex job_mutex_, m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t total_ = 0, done_ = 0, generation_ = 0, active_workers_ = 0;
  int busy_ = 0;
  std::atomic<size_t> next_{0};
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace

int num_threads() {
  int t = g_threads.load();
  if (t < 1) {
    t = default_threads();
    g_threads.store(t);
  }
  return t;
}

void set_num_threads(int n) { g_threads.store(n < 1 ? default_threads() : n); }

void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t min_chunk,
                  size_t max_chunks) {
  if (n == 0) return;
  const int threads = num_threads();
  size_t chunks = max_chunks ? max_chunks : static_cast<size_t>(threads);
  chunks = std::min(chunks, (n + std::max<size_t>(min_chunk, 1) - 1) / std::max<size_t>(min_chunk, 1));
  chunks = std::max<size_t>(chunks, 1);
  if (chunks == 1 || threads == 1) {
    fn(0, n);
    return;
  }
  const size_t step = (n + chunks - 1) / chunks;
  chunks = (n + step - 1) / step;
  std::function<void(size_t)> chunk_fn = [&](size_t c) {
    size_t b = c * step, e = std::min(n, b + step);
    if (b < e) fn(b, e);
  };
  Pool::get().run(chunks, chunk_fn, threads);
}

}  // namespace usclip
