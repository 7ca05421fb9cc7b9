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
#include <cstdlib>
#include <cstring>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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
  int taps4 = 0;             // taps rounded up to a multiple of 4
  std::vector<float> w4;     // [out][taps4]: w padded with zeros
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
  f.taps4 = (f.taps + 3) / 4 * 4;
  f.w4.assign(static_cast<size_t>(out_size) * f.taps4, 0.f);
  for (int i = 0; i < out_size; ++i)
    std::copy_n(f.w.begin() + static_cast<size_t>(i) * f.taps, f.taps,
                f.w4.begin() + static_cast<size_t>(i) * f.taps4);
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
// 16 bytes per step with SSE2 (baseline on x86-64), else 8 with a SWAR zero-byte test.
inline int64_t scan_mask(const uint8_t* m, int64_t x, int64_t end, bool want_set) {
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  while (x + 16 <= end) {
    const int z = _mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(m + x)), zero));
    const int hit = want_set ? (~z & 0xffff) : z;
    if (hit) return x + __builtin_ctz(static_cast<unsigned>(hit));
    x += 16;
  }
#else
  constexpr uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  while (x + 8 <= end) {
    uint64_t v;
    std::memcpy(&v, m + x, 8);
    if (want_set ? v : ((v - ones) & ~v & highs)) break;  // the scalar loop finds the byte
    x += 8;
  }
#endif
  while (x < end && ((m[x] != 0) != want_set)) ++x;
  return x;
}

// Where each crop row of the mask changes state (0 <-> nonzero), computed once per source
// row and shared by the ~2 output rows that read it. Rows of mask frame f start at
// f * crop_h.
struct MaskEdges {
  std::vector<std::vector<int32_t>> rows;
};

void find_edges(const Mask& m, const Params& p, int64_t masks, MaskEdges& e) {
  const int64_t cw = p.roi_x1 - p.roi_x0, ch = p.roi_y1 - p.roi_y0;
  e.rows.resize(static_cast<size_t>(masks * ch));
  parallel_for(static_cast<size_t>(masks * ch), [&](size_t b, size_t end) {
    for (size_t r = b; r < end; ++r) {
      const int64_t f = static_cast<int64_t>(r) / ch, y = p.roi_y0 + static_cast<int64_t>(r) % ch;
      const uint8_t* row = m.data + f * m.stride_n + y * m.stride_h + p.roi_x0;
      auto& out = e.rows[r];
      out.clear();
      for (int64_t a = 0; a < cw;) {
        a = scan_mask(row, a, cw, row[a] == 0);
        if (a < cw) out.push_back(static_cast<int32_t>(a));
      }
    }
  }, 64);
}

struct Job {
  const Frames* f;
  const Mask* m;
  const Params* p;
  const Filter* fx;
  const Filter* fy;
  void* out;
  float pad[3];  // normalised fill value, per output channel
  const MaskEdges* edges;
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

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define USCLIP_X86_CLONES 1
#include <immintrin.h>
// vsum with AVX2 intrinsics: all taps of a 32-byte block summed in four registers, one
// vpmovzxbd + cvt + fma per 8 bytes per tap and one store per block (GCC's auto-vectorised
// axpy needs about twice the instructions plus an acc load/store per tap).
__attribute__((target("avx2,fma"), always_inline)) inline __m256 cvt8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

__attribute__((target("avx2,fma"))) inline void vsum_avx2(float* __restrict acc,
                                                          const uint8_t* const* rows,
                                                          const float* w, int taps, int64_t b,
                                                          int64_t e) {
  if (taps == 0) {
    std::fill(acc + b, acc + e, 0.f);
    return;
  }
  int64_t x = b;
  for (; x + 32 <= e; x += 32) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int k = 0; k < taps; ++k) {
      const __m256 wk = _mm256_broadcast_ss(w + k);
      const uint8_t* r = rows[k] + x;
      s0 = _mm256_fmadd_ps(wk, cvt8(r), s0);
      s1 = _mm256_fmadd_ps(wk, cvt8(r + 8), s1);
      s2 = _mm256_fmadd_ps(wk, cvt8(r + 16), s2);
      s3 = _mm256_fmadd_ps(wk, cvt8(r + 24), s3);
    }
    _mm256_storeu_ps(acc + x, s0);
    _mm256_storeu_ps(acc + x + 8, s1);
    _mm256_storeu_ps(acc + x + 16, s2);
    _mm256_storeu_ps(acc + x + 24, s3);
  }
  for (; x + 8 <= e; x += 8) {
    __m256 s0 = _mm256_setzero_ps();
    for (int k = 0; k < taps; ++k)
      s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + k), cvt8(rows[k] + x), s0);
    _mm256_storeu_ps(acc + x, s0);
  }
  for (; x < e; ++x) {
    float s = 0;
    for (int k = 0; k < taps; ++k) s += w[k] * static_cast<float>(rows[k][x]);
    acc[x] = s;
  }
}
#endif

// Dispatch inside the templated body: Avx2 is true only in the AVX2 clone.
template <bool Avx2>
USCLIP_INLINE void vsum_any(float* __restrict acc, const uint8_t* const* rows, const float* w,
                            int taps, int64_t b, int64_t e) {
#ifdef USCLIP_X86_CLONES
  if constexpr (Avx2) {
    vsum_avx2(acc, rows, w, taps, b, e);
    return;
  }
#endif
  vsum(acc, rows, w, taps, b, e);
}

constexpr int kMaxFused = 64;  // taps summed per vsum call (more: accumulated in rounds)

// Vertical pass for content row i of frame n into acc (crop width x C) and, with a mask,
// keep (crop width: the weight of unmasked pixels). The mask rows of the taps are split at
// every run boundary into segments where each tap row is wholly kept or wholly masked; a
// segment is one vsum over its kept taps. A fan mask gives a handful of segments per row.
// Sorted, unique segment boundaries for content row i: 0, crop width and every mask edge of
// the tap rows k0..k1 that carry weight.
inline void collect_cuts(const Job& J, int64_t n, int i, int k0, int k1,
                         std::vector<int64_t>& cuts) {
  const Params& P = *J.p;
  const float* wy = J.fy->w.data() + static_cast<size_t>(i) * J.fy->taps;
  cuts.assign({0, static_cast<int64_t>(P.roi_x1 - P.roi_x0)});
  const int64_t erow0 = (J.m->stride_n ? n : 0) * (P.roi_y1 - P.roi_y0) + J.fy->start[i];
  for (int k = k0; k < k1; ++k) {
    if (wy[k] == 0.f) continue;
    const auto& ed = J.edges->rows[static_cast<size_t>(erow0 + k)];
    cuts.insert(cuts.end(), ed.begin(), ed.end());
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
}

template <bool Avx2>
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
        vsum_any<Avx2>(acc, rows, w, t, 0, cw * C);
      } else {  // rare (> 64 taps: a > 32x downscale): add this round's partial sums
        thread_local std::vector<float> part;
        part.resize(static_cast<size_t>(cw * C));
        vsum_any<Avx2>(part.data(), rows, w, t, 0, cw * C);
        for (int64_t x = 0; x < cw * C; ++x) acc[x] += part[x];
      }
      continue;
    }
    collect_cuts(J, n, i, k0, std::min(T, k0 + kMaxFused), cuts);
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
      vsum_any<Avx2>(dst, srows, sw, u, a * C, b * C);
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
      // Two accumulators: halves the multiply-add dependency chain.
      v4f s = {0, 0, 0, 0}, t = {0, 0, 0, 0};
      int k = 0;
      for (; k + 2 <= K; k += 2) {
        s += w[k] * load4(a + k * C);
        t += w[k + 1] * load4(a + (k + 1) * C);
      }
      if (k < K) s += w[k] * load4(a + k * C);
      s += t;
      r = s[c0];
      g = s[c1];
      b = s[c2];
    }
    if (keep) {
      // Four taps at a time; weights are padded to a multiple of 4 with zeros (Filter::w4)
      // and keep has zeroed slack past its end, so the extra products are exact zeros.
      const float* kp = keep + J.fx->start[j];
      const float* w4 = J.fx->w4.data() + static_cast<size_t>(j) * J.fx->taps4;
      v4f k4 = {0, 0, 0, 0};
      for (int k = 0; k < J.fx->taps4; k += 4) k4 += load4(w4 + k) * load4(kp + k);
      const float lost = 1.f - (k4[0] + k4[1] + k4[2] + k4[3]);
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
template <typename T, bool Avx2>
USCLIP_INLINE void rows_body(const Job& J, size_t begin, size_t end) {
  const Params& P = *J.p;
  const int64_t cw = P.roi_x1 - P.roi_x0;
  thread_local std::vector<float> acc_buf, keep_buf;
  thread_local std::vector<int64_t> cuts;
  // Slack past the row: 4-wide loads of the last pixel (acc) and zero-weight padded taps
  // (keep) read there; it is zeroed so those products are exact zeros.
  acc_buf.resize(static_cast<size_t>(cw * J.f->c + 8));
  keep_buf.resize(static_cast<size_t>(cw + 8));
  std::fill(acc_buf.begin() + cw * J.f->c, acc_buf.end(), 0.f);
  std::fill(keep_buf.begin() + cw, keep_buf.end(), 0.f);
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
    vertical<Avx2>(J, n, i, acc, keep, cuts);
    switch (J.f->c) {
      case 1: horizontal<T, 1>(J, n, row, acc, keep); break;
      case 3: horizontal<T, 3>(J, n, row, acc, keep); break;
      default: horizontal<T, 4>(J, n, row, acc, keep); break;
    }
  }
}

void rows_generic(const Job& J, size_t b, size_t e) {
  if (J.p->fp16) rows_body<uint16_t, false>(J, b, e);
  else rows_body<float, false>(J, b, e);
}

#ifdef USCLIP_X86_CLONES
// The same code compiled for AVX2 + FMA (8 bytes -> 8 floats per multiply-add), picked at
// run time: the build targets baseline x86-64 so the wheel runs on any x86 machine.
__attribute__((target("avx2,fma"))) void rows_avx2(const Job& J, size_t b, size_t e) {
  if (J.p->fp16) rows_body<uint16_t, true>(J, b, e);
  else rows_body<float, true>(J, b, e);
}
using RowsFn = void (*)(const Job&, size_t, size_t);
RowsFn pick_rows() {
  // USCLIP_PREPROCESS_GENERIC=1 forces the portable clone (tests cover it on AVX2 machines).
  const char* env = std::getenv("USCLIP_PREPROCESS_GENERIC");
  if (env && env[0] == '1') return rows_generic;
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
  static thread_local MaskEdges edges;  // reused: keeps the row vectors' capacity
  if (m.data) find_edges(m, p, m.stride_n ? f.n : 1, edges);
  Job job{&f, &m, &p, &fx, &fy, out, {}, &edges};
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
