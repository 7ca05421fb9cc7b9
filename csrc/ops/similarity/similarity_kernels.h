// Internal: the CPU inner kernels of the similarity op, one table per instruction set
// (AVX2+FMA+F16C on x86-64 chosen at run time, NEON on aarch64, portable otherwise).
#pragma once
#include <cstdint>
#include <cstring>

#include "ops/similarity/similarity.h"

namespace usclip::similarity::detail {

struct Kernels {
  const char* name;
  // out[r * ldo + (j - j0)] = <x_{r0+r}, c_j> for r < rows (1..4), j in [j0, j1).
  // When csq is not null, also csq[j - j0] = |c_j|^2 (computed in the same pass over C).
  void (*dots)(const Matrix& x, int64_t r0, int rows, const Matrix& c, int64_t j0, int64_t j1,
               float* out, int64_t ldo, float* csq);
  // dst[(r - r0) * m.cols + i] = m[r][i] as float32 for r in [r0, r1).
  void (*to_f32)(const Matrix& m, int64_t r0, int64_t r1, float* dst);
  // sq[r - r0] = |m_r|^2 for r in [r0, r1).
  void (*sumsq)(const Matrix& m, int64_t r0, int64_t r1, float* sq);
  // dst[i] = a * src[i] * cinv[i] + b; returns false if any result is not finite.
  bool (*affine)(const float* src, const float* cinv, float a, float b, float* dst, int64_t n);
  // The first i in [from, n) with p[i] > thr, or n (the top-k scan's filter).
  int64_t (*first_above)(const float* p, int64_t from, int64_t n, float thr);
  // max of p[0..n), n >= 1 (inputs finite).
  float (*vmax)(const float* p, int64_t n);
  // out[i] = exp(in[i] - shift) for i < n (out may alias in); returns the sum of out.
  float (*exp_shift_sum)(const float* in, float shift, float* out, int64_t n);
};

// The best table for this CPU (chosen once).
const Kernels& kernels();

// IEEE half -> float without hardware support (portable path and rare slow paths).
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float f = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24
    return sign ? -f : f;
  }
  const uint32_t bits = e == 31 ? (sign | 0x7f800000u | (m << 13))
                                : (sign | ((e + 112u) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Row pointer of a strided matrix (row stride in elements, may be negative).
template <typename T>
inline const T* row_ptr(const Matrix& m, int64_t r) {
  return static_cast<const T*>(m.data) + r * m.row_stride;
}

}  // namespace usclip::similarity::detail
