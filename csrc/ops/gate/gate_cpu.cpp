// CPU gate kernel: gate_kernel.inl compiled twice, portable and for AVX2 (4 doubles a vector
// instead of 2: the moments pass, about a third of the time, halves), picked once at run time.
// The build uses no -march flag (wheels run on any x86-64), so the AVX2 copy is compiled under
// a target pragma, as the similarity op's is. USCLIP_CPU_KERNEL=generic forces the portable
// copy (the tests run it on x86 so the code aarch64 builds use is exercised too).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "ops/gate/gate.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define USCLIP_GATE_X86 1
#endif

namespace usclip::gate {

namespace generic {
namespace {

// Four doubles as two 2-lane vectors: native on SSE2 and NEON, so the sums stay in registers
// (GCC's generic 4 x double vectors live in memory on baseline x86-64, and every sum then
// waits on a store).
using v4f = float __attribute__((vector_size(16)));
using v2d = double __attribute__((vector_size(16)));
struct d4 {
  v2d lo, hi;
};
inline d4 operator+(d4 a, d4 b) { return {a.lo + b.lo, a.hi + b.hi}; }
inline d4 operator-(d4 a, d4 b) { return {a.lo - b.lo, a.hi - b.hi}; }
inline d4 operator*(d4 a, d4 b) { return {a.lo * b.lo, a.hi * b.hi}; }
inline d4& operator+=(d4& a, d4 b) { return a = a + b; }
inline d4 splat(double x) { return {v2d{x, x}, v2d{x, x}}; }
inline v2d vabs(v2d v) { return v2d{std::fabs(v[0]), std::fabs(v[1])}; }
inline d4 vabs(d4 a) { return {vabs(a.lo), vabs(a.hi)}; }
inline double hsum(d4 a) {
  const v2d s = a.lo + a.hi;
  return s[0] + s[1];
}
inline d4 load4(const float* p) {
#if defined(__SSE2__)
  const __m128 v = _mm_loadu_ps(p);
  return {reinterpret_cast<v2d>(_mm_cvtps_pd(v)), reinterpret_cast<v2d>(_mm_cvtps_pd(_mm_movehl_ps(v, v)))};
#else
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return {__builtin_convertvector(__builtin_shufflevector(v, v, 0, 1), v2d),
          __builtin_convertvector(__builtin_shufflevector(v, v, 2, 3), v2d)};
#endif
}

}  // namespace
#include "ops/gate/gate_kernel.inl"
}  // namespace generic

#ifdef USCLIP_GATE_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
namespace {

// FMA contraction here only touches double sums: the float32 steps the reference rounds
// (grey values, the patch variance) have no multiply-add to contract (see speckle's volatile).
using d4 = __m256d;
inline d4 splat(double x) { return _mm256_set1_pd(x); }
inline d4 vabs(d4 a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
inline double hsum(d4 a) { return (a[0] + a[1]) + (a[2] + a[3]); }
inline d4 load4(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }

}  // namespace
#include "ops/gate/gate_kernel.inl"
}  // namespace avx2
#pragma GCC pop_options
#endif

namespace {

using Kernel = Figures (*)(const Image&, const Mask&, const Box&);

struct Choice {
  Kernel run;
  const char* name;
};

Choice choose() {
  if (const char* e = std::getenv("USCLIP_CPU_KERNEL")) {
    if (std::strcmp(e, "generic") == 0) return {generic::run, "generic"};
  }
#ifdef USCLIP_GATE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {avx2::run, "avx2+fma"};
#endif
  return {generic::run, "generic"};
}

const Choice& chosen() {
  static const Choice c = choose();
  return c;
}

}  // namespace

Figures run_cpu(const Image& im, const Mask& m, const Box& b) {
  validate(im, m, b);
  return chosen().run(im, m, b);
}

const char* cpu_kernel_variant() { return chosen().name; }

}  // namespace usclip::gate
