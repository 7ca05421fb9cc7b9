// A small persistent thread pool shared by the CPU kernels.
// parallel_for(n, fn) runs fn(begin, end) over [0, n) split into contiguous chunks, on the
// calling thread plus the pool's workers, and returns when all chunks are done. Workers are
// created once (thread spawn costs tens of microseconds, more than a small frame's work).
#pragma once
#include <cstddef>
#include <functional>

namespace usclip {

// Number of threads parallel_for uses (USCLIP_NUM_THREADS, else hardware concurrency).
int num_threads();
// Override at run time (1 = serial). Values < 1 reset to the default.
void set_num_threads(int n);

// fn(begin, end) over [0, n); at most max_chunks chunks (0 = one per thread); chunks smaller
// than min_chunk items are merged so tiny jobs stay on the calling thread.
void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t min_chunk = 1,
                  size_t max_chunks = 0);

}  // namespace usclip
