// Internal: the per-instruction-set copies of the similarity inner kernels and the run-time
// choice between them. The build uses no -march flag (wheels run on any x86-64), so the AVX2
// copy is compiled under a target pragma and picked only when the CPU reports AVX2+FMA+F16C.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ops/similarity/similarity_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define USCLIP_SIM_X86 1
#endif

namespace usclip::similarity::detail {
namespace {

// Portable vector: 8 independent float lanes. Element-wise code like this is vectorised by
// the compiler (SSE2, NEON) without reassociating any sum, so results stay deterministic.
struct Generic {
  struct reg {
    float v[8];
  };
  static constexpr int W = 8;
  static inline reg zero() { return set1(0.0f); }
  static inline reg set1(float a) {
    reg r;
    for (int i = 0; i < W; ++i) r.v[i] = a;
    return r;
  }
  static inline reg load(const float* p) {
    reg r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static inline reg load(const uint16_t* p) {
    reg r;
    for (int i = 0; i < W; ++i) r.v[i] = half_to_float(p[i]);
    return r;
  }
  static inline void store(float* p, reg a) { std::memcpy(p, a.v, sizeof a.v); }
  static inline reg fma(reg a, reg b, reg c) {
    for (int i = 0; i < W; ++i) c.v[i] += a.v[i] * b.v[i];
    return c;
  }
  static inline reg add(reg a, reg b) {
    for (int i = 0; i < W; ++i) a.v[i] += b.v[i];
    return a;
  }
  static inline reg sub(reg a, reg b) {
    for (int i = 0; i < W; ++i) a.v[i] -= b.v[i];
    return a;
  }
  static inline reg exp(reg a) {
    for (int i = 0; i < W; ++i) a.v[i] = std::exp(a.v[i]);
    return a;
  }
  static inline reg mul(reg a, reg b) {
    for (int i = 0; i < W; ++i) a.v[i] *= b.v[i];
    return a;
  }
  static inline reg max(reg a, reg b) {
    for (int i = 0; i < W; ++i) a.v[i] = b.v[i] > a.v[i] ? b.v[i] : a.v[i];
    return a;
  }
  static inline float hmax(reg a) {
    float m = a.v[0];
    for (int i = 1; i < W; ++i) m = a.v[i] > m ? a.v[i] : m;
    return m;
  }
  static inline reg nonfinite(reg a) {  // 1.0 where not finite (NaN compares false)
    for (int i = 0; i < W; ++i) a.v[i] = (a.v[i] - a.v[i] == 0.0f) ? 0.0f : 1.0f;
    return a;
  }
  static inline reg bor(reg a, reg b) { return add(a, b); }
  static inline unsigned gt_mask(reg a, reg b) {
    unsigned m = 0;
    for (int i = 0; i < W; ++i) m |= (a.v[i] > b.v[i] ? 1u : 0u) << i;
    return m;
  }
  static inline bool any(reg a) { return hsum(a) != 0.0f; }
  static inline float hsum(reg a) {
    return ((a.v[0] + a.v[4]) + (a.v[2] + a.v[6])) + ((a.v[1] + a.v[5]) + (a.v[3] + a.v[7]));
  }
  static inline float scalar(float a) { return a; }
  static inline float scalar(uint16_t h) { return half_to_float(h); }
};

namespace generic {
using V = Generic;
#include "ops/similarity/similarity_tile.inl"
}  // namespace generic

}  // namespace
}  // namespace usclip::similarity::detail

#ifdef USCLIP_SIM_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace usclip::similarity::detail {
namespace {

struct Avx2 {
  using reg = __m256;
  static constexpr int W = 8;
  static inline reg zero() { return _mm256_setzero_ps(); }
  static inline reg set1(float a) { return _mm256_set1_ps(a); }
  static inline reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline reg load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static inline void store(float* p, reg a) { _mm256_storeu_ps(p, a); }
  static inline reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static inline reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static inline float hsum(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static inline float scalar(float a) { return a; }
  static inline float scalar(uint16_t h) { return _cvtsh_ss(h); }
  static inline reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static inline reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static inline float hmax(reg a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // v - v is 0 for finite lanes and NaN for NaN/inf; "not equal, unordered" flags those.
  static inline reg nonfinite(reg a) { return _mm256_cmp_ps(_mm256_sub_ps(a, a), _mm256_setzero_ps(), _CMP_NEQ_UQ); }
  static inline reg bor(reg a, reg b) { return _mm256_or_ps(a, b); }
  static inline unsigned gt_mask(reg a, reg b) {
    return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)));
  }
  static inline bool any(reg a) { return _mm256_movemask_ps(a) != 0; }
  // Cephes-style expf for a <= 0 (inputs are logits minus their maximum): Cody-Waite range
  // reduction, degree-5 polynomial, about 1 ulp; below the smallest normal it flushes to 0.
  static inline reg exp(reg a) {
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    const __m256 under = _mm256_cmp_ps(a, lo, _CMP_LT_OQ);
    __m256 x = _mm256_min_ps(_mm256_max_ps(a, lo), _mm256_set1_ps(88.0f));
    const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, y);
  }
};

namespace avx2 {
using V = Avx2;
#include "ops/similarity/similarity_tile.inl"
}  // namespace avx2

}  // namespace
}  // namespace usclip::similarity::detail
#pragma GCC pop_options
#endif

namespace usclip::similarity::detail {
namespace {

const Kernels kGeneric{"generic", generic::dots, generic::to_f32, generic::sumsq, generic::affine, generic::first_above,
                       generic::vmax,
                       generic::exp_shift_sum};
#ifdef USCLIP_SIM_X86
const Kernels kAvx2{"avx2+fma+f16c", avx2::dots, avx2::to_f32, avx2::sumsq, avx2::affine, avx2::first_above, avx2::vmax,
                    avx2::exp_shift_sum};
#endif

const Kernels& choose() {
  // USCLIP_CPU_KERNEL=generic forces the portable copy (tests run it on x86 so the code
  // aarch64 builds use is exercised too).
  if (const char* e = std::getenv("USCLIP_CPU_KERNEL")) {
    if (std::strcmp(e, "generic") == 0) return kGeneric;
  }
#ifdef USCLIP_SIM_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return kAvx2;
  }
#endif
  return kGeneric;
}

}  // namespace

const Kernels& kernels() {
  static const Kernels& k = choose();
  return k;
}

}  // namespace usclip::similarity::detail
