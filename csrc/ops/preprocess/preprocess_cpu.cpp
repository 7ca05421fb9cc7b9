// CPU preprocessing kernel. Per output row: a vertical pass over the crop's source rows
// (uint8 -> float, one multiply-add per byte, channel-agnostic, so it vectorises over the
// interleaved bytes), then a horizontal pass on that one float row, normalisation and the
// NCHW store. Every output row is independent, so rows (of all frames) are the parallel unit
// and each source pixel of the crop is read about twice (triangle filter overlap), straight
// from the caller's frame: no crop copy, no intermediate image.
//
// Masking is exact under antialiasing by linearity: filtering the masked image
// (masked pixel = fill) equals F(mask * src) + fill * (1 - F(mask)), weights summing to 1.
// The vertical pass therefore adds only the unmasked runs of each row (found 8 bytes at a
// time) into the colour accumulator and a per-pixel "kept weight" accumulator.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "ops/preprocess/preprocess.h"

#if defined(__GNUC__) && !defined(__clang__)
#define USCLIP_INLINE __attribute__((always_inline)) inline
#else
#define USCLIP_INLINE inline
#endif

namespace usclip::preprocess {
namespace {

// Weights for one axis, padded to a fixed tap count so the inner loops have no bounds logic.
struct Filter {
  int taps = 0;
  std::vector<int> start;    // first input index (relative to the crop)
  std::vector<float> w;      // [out][taps], each row sums to 1
};

Filter make_filter(int in_size, int out_size) {
  Filter f;
  f.start.resize(out_size);
  for (int i = 0; i < out_size; ++i) {
    Window win = window(i, in_size, out_size);
    f.taps = std::max(f.taps, win.hi - win.lo);
  }
  f.w.assign(static_cast<size_t>(out_size) * f.taps, 0.f);
  for (int i = 0; i < out_size; ++i) {
    Window win = window(i, in_size, out_size);
    double total = 0;
    for (int k = 0; k < win.hi - win.lo; ++k) total += tap(win, k);
    // Shift windows that would run past the end left, so start + taps <= in_size.
    const int start = std::min(win.lo, in_size - f.taps);
    f.start[i] = start;
    for (int k = 0; k < win.hi - win.lo; ++k)
      f.w[static_cast<size_t>(i) * f.taps + (win.lo - start) + k] =
          total > 0 ? static_cast<float>(tap(win, k) / total) : 0.f;
  }
  return f;
}

// float -> IEEE half, round to nearest even (what numpy's astype(float16) does).
inline uint16_t to_half(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN / inf
  if (x >= 0x477ff000u) return sign | 0x7c00u;                            // overflow
  if (x < 0x38800000u) {                                                  // subnormal / zero
    if (x < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((x - 0x38000000u) >> 13);
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

// First index in [x, end) whose mask byte is nonzero (want_set) or zero (!want_set).
// Eight bytes at a time: fan masks are long runs, so a row costs a few dozen word tests.
USCLIP_INLINE int64_t scan_mask(const uint8_t* m, int64_t x, int64_t end, bool want_set) {
  constexpr uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  while (x + 8 <= end) {
    uint64_t v;
    std::memcpy(&v, m + x, 8);
    const uint64_t hit = want_set ? v : ((v - ones) & ~v & highs);  // lowest zero byte exact
    if (hit) {
      // Little-endian (x86-64, aarch64): the lowest set byte is the first in memory.
      break;
    }
    x += 8;
  }
  while (x < end && ((m[x] != 0) != want_set)) ++x;
  return x;
}

struct Job {
  const Frames* f;
  const Mask* m;
  const Params* p;
  const Filter* fx;
  const Filter* fy;
  void* out;
  float pad[3];  // normalised fill value, per output channel
};

// acc[0..n) (+)= w * src[0..n): GCC vectorises this form well (pmovzx + cvt + fma), which
// it does not for vector-extension byte->float conversions.
template <bool Set>
USCLIP_INLINE void axpy(float* __restrict acc, const uint8_t* __restrict src, float w,
                        int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] = (Set ? 0.f : acc[i]) + w * static_cast<float>(src[i]);
}

// acc[b..e) = sum_k w[k] * rows[k][b..e), one pass per tap over an L1-resident row.
USCLIP_INLINE void vsum(float* __restrict acc, const uint8_t* const* rows, const float* w,
                        int taps, int64_t b, int64_t e) {
  if (taps == 0) {
    std::fill(acc + b, acc + e, 0.f);
    return;
  }
  axpy<true>(acc + b, rows[0] + b, w[0], e - b);
  for (int k = 1; k < taps; ++k) axpy<false>(acc + b, rows[k] + b, w[k], e - b);
}

constexpr int kMaxFused = 64;  // taps summed per vsum call (more: accumulated in rounds)

// Vertical pass for content row i of frame n into acc (crop width x C) and, with a mask,
// keep (crop width: the weight of unmasked pixels). The mask rows of the taps are split at
// every run boundary into segments where each tap row is wholly kept or wholly masked; a
// segment is one vsum over its kept taps. A fan mask gives a handful of segments per row.
USCLIP_INLINE void vertical(const Job& J, int64_t n, int i, float* __restrict acc,
                            float* __restrict keep, std::vector<int64_t>& cuts) {
  const Frames& F = *J.f;
  const Params& P = *J.p;
  const int64_t cw = P.roi_x1 - P.roi_x0, C = F.c;
  const int T = J.fy->taps;
  const float* wy = J.fy->w.data() + static_cast<size_t>(i) * T;
  const uint8_t* base = F.data + n * F.stride_n + static_cast<int64_t>(P.roi_x0) * C;
  const uint8_t* rows[kMaxFused];
  const uint8_t* mrows[kMaxFused];
  float w[kMaxFused];
  const uint8_t* mbase = J.m->data ? J.m->data + n * J.m->stride_n + P.roi_x0 : nullptr;
  for (int k0 = 0; k0 < T; k0 += kMaxFused) {
    const bool first = k0 == 0;
    int t = 0;
    for (int k = k0; k < std::min(T, k0 + kMaxFused); ++k) {
      if (wy[k] == 0.f) continue;
      const int64_t y = P.roi_y0 + J.fy->start[i] + k;
      rows[t] = base + y * F.stride_h;
      mrows[t] = mbase ? mbase + y * J.m->stride_h : nullptr;
      w[t++] = wy[k];
    }
    if (!mbase) {
      if (first) {
        vsum(acc, rows, w, t, 0, cw * C);
      } else {  // rare (> 64 taps: a > 32x downscale): add this round's partial sums
        thread_local std::vector<float> part;
        part.resize(static_cast<size_t>(cw * C));
        vsum(part.data(), rows, w, t, 0, cw * C);
        for (int64_t x = 0; x < cw * C; ++x) acc[x] += part[x];
      }
      continue;
    }
    cuts.assign({0, cw});
    for (int k = 0; k < t; ++k)
      for (int64_t a = 0; a < cw;) {
        a = scan_mask(mrows[k], a, cw, mrows[k][a] == 0);  // next transition
        if (a < cw) cuts.push_back(a);
      }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    thread_local std::vector<float> part;
    if (!first) part.resize(static_cast<size_t>(cw * C));
    float* dst = first ? acc : part.data();
    for (size_t s = 0; s + 1 < cuts.size(); ++s) {
      const int64_t a = cuts[s], b = cuts[s + 1];
      const uint8_t* srows[kMaxFused];
      float sw[kMaxFused], kept = 0;
      int u = 0;
      for (int k = 0; k < t; ++k)
        if (mrows[k][a]) {
          srows[u] = rows[k];
          sw[u++] = w[k];
          kept += w[k];
        }
      vsum(dst, srows, sw, u, a * C, b * C);
      for (int64_t x = a; x < b; ++x) keep[x] = (first ? 0.f : keep[x]) + kept;
    }
    if (!first)
      for (int64_t x = 0; x < cw * C; ++x) acc[x] += part[x];
  }
}

template <typename T>
USCLIP_INLINE void store(void* out, size_t idx, float v) {
  if constexpr (sizeof(T) == 2) static_cast<uint16_t*>(out)[idx] = to_half(v);
  else static_cast<float*>(out)[idx] = v;
}

// Four floats: one pixel's channels (C = 3 reads one float of the next pixel, unused) so
// each tap is one load + one multiply-add instead of three (GCC/Clang vector extension:
// SSE on x86-64, NEON on aarch64).
typedef float v4f __attribute__((vector_size(16)));

USCLIP_INLINE v4f load4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Horizontal pass + normalisation + store of one output row (content part).
template <typename T, int C>
USCLIP_INLINE void horizontal(const Job& J, int64_t n, int row, const float* __restrict acc,
                              const float* __restrict keep) {
  const Params& P = *J.p;
  const int K = J.fx->taps;
  const int c0 = P.channel[0], c1 = P.channel[1], c2 = P.channel[2];
  const size_t plane = static_cast<size_t>(P.out_h) * P.out_w;
  const size_t o = (static_cast<size_t>(n) * 3 * P.out_h + row) * P.out_w + P.place_x;
  for (int j = 0; j < P.place_w; ++j) {
    const float* w = J.fx->w.data() + static_cast<size_t>(j) * K;
    const float* a = acc + static_cast<int64_t>(J.fx->start[j]) * C;
    float r, g, b;
    if constexpr (C == 1) {
      float s = 0;
      for (int k = 0; k < K; ++k) s += w[k] * a[k];
      r = g = b = s;
    } else {
      v4f s = {0, 0, 0, 0};
      for (int k = 0; k < K; ++k) s += w[k] * load4(a + k * C);
      r = s[c0];
      g = s[c1];
      b = s[c2];
    }
    if (keep) {
      const float* kp = keep + J.fx->start[j];
      float kept = 0;
      for (int k = 0; k < K; ++k) kept += w[k] * kp[k];
      const float lost = 1.f - kept;
      r += lost * P.fill[0];
      g += lost * P.fill[1];
      b += lost * P.fill[2];
    }
    store<T>(J.out, o + j, r * P.scale[0] + P.bias[0]);
    store<T>(J.out, o + plane + j, g * P.scale[1] + P.bias[1]);
    store<T>(J.out, o + 2 * plane + j, b * P.scale[2] + P.bias[2]);
  }
}

template <typename T>
USCLIP_INLINE void pad_row(const Job& J, int64_t n, int row, int x0, int x1) {
  const Params& P = *J.p;
  for (int c = 0; c < 3; ++c) {
    const size_t o = ((static_cast<size_t>(n) * 3 + c) * P.out_h + row) * P.out_w;
    for (int x = x0; x < x1; ++x) store<T>(J.out, o + x, J.pad[c]);
  }
}

// Output rows [begin, end) of the flattened (frame, row) range.
template <typename T>
USCLIP_INLINE void rows_body(const Job& J, size_t begin, size_t end) {
  const Params& P = *J.p;
  const int64_t cw = P.roi_x1 - P.roi_x0;
  thread_local std::vector<float> acc_buf, keep_buf;
  thread_local std::vector<int64_t> cuts;
  // +8 keeps the horizontal pass's padded taps inside the buffer for any C.
  acc_buf.resize(static_cast<size_t>(cw * J.f->c + 8));
  keep_buf.resize(static_cast<size_t>(cw + 8));
  float* acc = acc_buf.data();
  float* keep = J.m->data ? keep_buf.data() : nullptr;
  for (size_t item = begin; item < end; ++item) {
    const int64_t n = static_cast<int64_t>(item / P.out_h);
    const int row = static_cast<int>(item % P.out_h);
    const int i = row - P.place_y;
    if (i < 0 || i >= P.place_h) {
      pad_row<T>(J, n, row, 0, P.out_w);
      continue;
    }
    pad_row<T>(J, n, row, 0, P.place_x);
    pad_row<T>(J, n, row, P.place_x + P.place_w, P.out_w);
    vertical(J, n, i, acc, keep, cuts);
    switch (J.f->c) {
      case 1: horizontal<T, 1>(J, n, row, acc, keep); break;
      case 3: horizontal<T, 3>(J, n, row, acc, keep); break;
      default: horizontal<T, 4>(J, n, row, acc, keep); break;
    }
  }
}

void rows_generic(const Job& J, size_t b, size_t e) {
  if (J.p->fp16) rows_body<uint16_t>(J, b, e);
  else rows_body<float>(J, b, e);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// The same code compiled for AVX2 + FMA (8 bytes -> 8 floats per multiply-add), picked at
// run time: the build targets baseline x86-64 so the wheel runs on any x86 machine.
__attribute__((target("avx2,fma"))) void rows_avx2(const Job& J, size_t b, size_t e) {
  if (J.p->fp16) rows_body<uint16_t>(J, b, e);
  else rows_body<float>(J, b, e);
}
using RowsFn = void (*)(const Job&, size_t, size_t);
RowsFn pick_rows() {
  __builtin_cpu_init();
  return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? rows_avx2
                                                                           : rows_generic;
}
#else
using RowsFn = void (*)(const Job&, size_t, size_t);
RowsFn pick_rows() { return rows_generic; }
#endif

}  // namespace

void run_cpu(const Frames& f, const Mask& m, const Params& p, void* out) {
  validate(f, p);
  if (f.n == 0) return;
  if (!out) throw std::invalid_argument("out: null pointer");
  static const RowsFn rows = pick_rows();
  const Filter fx = make_filter(p.roi_x1 - p.roi_x0, p.place_w);
  const Filter fy = make_filter(p.roi_y1 - p.roi_y0, p.place_h);
  Job job{&f, &m, &p, &fx, &fy, out, {}};
  for (int c = 0; c < 3; ++c) job.pad[c] = p.fill[c] * p.scale[c] + p.bias[c];
  const size_t items = static_cast<size_t>(f.n) * p.out_h;
  // Rows cost about (crop width x taps) each; keep chunks above ~50 us of work so the pool's
  // hand-off (a few us) stays small, and split finely enough to balance two or more cores.
  const size_t row_cost = static_cast<size_t>(p.roi_x1 - p.roi_x0) * f.c * fy.taps + 1;
  const size_t min_rows = std::max<size_t>(1, 200000 / row_cost);
  parallel_for(items, [&](size_t b, size_t e) { rows(job, b, e); }, min_rows,
               static_cast<size_t>(num_threads()) * 4);
}

}  // namespace usclip::preprocess
