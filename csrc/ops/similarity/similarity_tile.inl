// Internal: register-blocked inner kernels, written once over a vector type `V` and included
// into one namespace per instruction set (similarity_simd_cpu.cpp), so each copy is compiled
// with that set's target options. No include guard on purpose.
//
// V provides: reg, W (lanes), zero(), load(const float*), load(const uint16_t*),
// fma(a, b, c) = a*b + c, hsum(reg), scalar(float|uint16_t), set1(float), exp(reg) for reg <= 0,
// add(reg, reg), sub(reg, reg), mul(reg, reg), max(reg, reg), hmax(reg), store(float*, reg),
// gt_mask(reg, reg) (bit i set where lane i of a > b), nonfinite(reg) (a reg whose lanes are nonzero where the input is NaN or +-inf), any(reg).

// R image rows x S class rows of dot products over d, one pass over each row. The R*S
// accumulators stay in registers; each loaded class vector feeds R FMAs (and its own square
// when SQ, which is how class norms come for free on the small-N path).
template <int R, int S, bool SQ, typename TX, typename TC>
static inline void tile(const TX* const* xr, const TC* const* cr, int64_t d, float* out,
                        int64_t ldo, float* csq) {
  typename V::reg acc[R][S];
  typename V::reg sq[S];
  for (int s = 0; s < S; ++s) {
    for (int r = 0; r < R; ++r) acc[r][s] = V::zero();
    sq[s] = V::zero();
  }
  int64_t i = 0;
  for (; i + V::W <= d; i += V::W) {
    typename V::reg xv[R];
    for (int r = 0; r < R; ++r) xv[r] = V::load(xr[r] + i);
    for (int s = 0; s < S; ++s) {
      const typename V::reg cv = V::load(cr[s] + i);
      for (int r = 0; r < R; ++r) acc[r][s] = V::fma(xv[r], cv, acc[r][s]);
      if constexpr (SQ) sq[s] = V::fma(cv, cv, sq[s]);
    }
  }
  float res[R][S];
  float rsq[S];
  for (int s = 0; s < S; ++s) {
    for (int r = 0; r < R; ++r) res[r][s] = V::hsum(acc[r][s]);
    rsq[s] = SQ ? V::hsum(sq[s]) : 0.0f;
  }
  for (; i < d; ++i) {  // the tail of d that does not fill a vector
    for (int s = 0; s < S; ++s) {
      const float cv = V::scalar(cr[s][i]);
      for (int r = 0; r < R; ++r) res[r][s] += V::scalar(xr[r][i]) * cv;
      if constexpr (SQ) rsq[s] += cv * cv;
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int r = 0; r < R; ++r) out[r * ldo + s] = res[r][s];
    if constexpr (SQ) csq[s] = rsq[s];
  }
}

// Class blocks of S (then single classes for the remainder) for a fixed R.
template <int R, int S, bool SQ, typename TX, typename TC>
static void dots_fixed(const Matrix& x, int64_t r0, const Matrix& c, int64_t j0, int64_t j1,
                       float* out, int64_t ldo, float* csq) {
  const TX* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = detail::row_ptr<TX>(x, r0 + r);
  const TC* cr[S];
  int64_t j = j0;
  for (; j + S <= j1; j += S) {
    for (int s = 0; s < S; ++s) cr[s] = detail::row_ptr<TC>(c, j + s);
    tile<R, S, SQ>(xr, cr, x.cols, out + (j - j0), ldo, SQ ? csq + (j - j0) : nullptr);
  }
  for (; j < j1; ++j) {
    cr[0] = detail::row_ptr<TC>(c, j);
    tile<R, 1, SQ>(xr, cr, x.cols, out + (j - j0), ldo, SQ ? csq + (j - j0) : nullptr);
  }
}

// Block widths: keep R*S (+S squares) accumulators within the 16 vector registers.
template <typename TX, typename TC>
static void dots_typed(const Matrix& x, int64_t r0, int rows, const Matrix& c, int64_t j0,
                       int64_t j1, float* out, int64_t ldo, float* csq) {
  if (csq) {
    switch (rows) {
      case 1: return dots_fixed<1, 4, true, TX, TC>(x, r0, c, j0, j1, out, ldo, csq);
      case 2: return dots_fixed<2, 4, true, TX, TC>(x, r0, c, j0, j1, out, ldo, csq);
      case 3: return dots_fixed<3, 3, true, TX, TC>(x, r0, c, j0, j1, out, ldo, csq);
      default: return dots_fixed<4, 2, true, TX, TC>(x, r0, c, j0, j1, out, ldo, csq);
    }
  }
  switch (rows) {
    case 1: return dots_fixed<1, 6, false, TX, TC>(x, r0, c, j0, j1, out, ldo, nullptr);
    case 2: return dots_fixed<2, 5, false, TX, TC>(x, r0, c, j0, j1, out, ldo, nullptr);
    case 3: return dots_fixed<3, 4, false, TX, TC>(x, r0, c, j0, j1, out, ldo, nullptr);
    default: return dots_fixed<4, 3, false, TX, TC>(x, r0, c, j0, j1, out, ldo, nullptr);
  }
}

static void dots(const Matrix& x, int64_t r0, int rows, const Matrix& c, int64_t j0, int64_t j1,
                 float* out, int64_t ldo, float* csq) {
  const bool xh = x.dtype == DType::kF16, ch = c.dtype == DType::kF16;
  if (!xh && !ch) return dots_typed<float, float>(x, r0, rows, c, j0, j1, out, ldo, csq);
  if (!xh && ch) return dots_typed<float, uint16_t>(x, r0, rows, c, j0, j1, out, ldo, csq);
  if (xh && !ch) return dots_typed<uint16_t, float>(x, r0, rows, c, j0, j1, out, ldo, csq);
  return dots_typed<uint16_t, uint16_t>(x, r0, rows, c, j0, j1, out, ldo, csq);
}

template <typename T>
static void sumsq_typed(const Matrix& m, int64_t r0, int64_t r1, float* sq) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* p = detail::row_ptr<T>(m, r);
    typename V::reg a0 = V::zero(), a1 = V::zero();
    int64_t i = 0;
    for (; i + 2 * V::W <= m.cols; i += 2 * V::W) {
      const typename V::reg v0 = V::load(p + i), v1 = V::load(p + i + V::W);
      a0 = V::fma(v0, v0, a0);
      a1 = V::fma(v1, v1, a1);
    }
    for (; i + V::W <= m.cols; i += V::W) {
      const typename V::reg v0 = V::load(p + i);
      a0 = V::fma(v0, v0, a0);
    }
    float s = V::hsum(V::add(a0, a1));
    for (; i < m.cols; ++i) s += V::scalar(p[i]) * V::scalar(p[i]);
    sq[r - r0] = s;
  }
}

static void sumsq(const Matrix& m, int64_t r0, int64_t r1, float* sq) {
  if (m.dtype == DType::kF16) return sumsq_typed<uint16_t>(m, r0, r1, sq);
  return sumsq_typed<float>(m, r0, r1, sq);
}

static float exp_shift_sum(const float* in, float shift, float* out, int64_t n) {
  const typename V::reg sh = V::set1(shift);
  typename V::reg acc = V::zero();
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) {
    const typename V::reg e = V::exp(V::sub(V::load(in + i), sh));
    V::store(out + i, e);
    acc = V::add(acc, e);
  }
  float s = V::hsum(acc);
  for (; i < n; ++i) {
    out[i] = std::exp(in[i] - shift);
    s += out[i];
  }
  return s;
}

static bool affine(const float* src, const float* cinv, float a, float b, float* dst, int64_t n) {
  const typename V::reg va = V::set1(a), vb = V::set1(b);
  typename V::reg bad = V::zero();
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) {
    const typename V::reg v = V::fma(V::mul(V::load(src + i), V::load(cinv + i)), va, vb);
    V::store(dst + i, v);
    bad = V::bor(bad, V::nonfinite(v));
  }
  bool ok = !V::any(bad);
  for (; i < n; ++i) {
    dst[i] = src[i] * cinv[i] * a + b;
    ok &= std::isfinite(dst[i]);
  }
  return ok;
}

static float vmax(const float* p, int64_t n) {
  int64_t i = 0;
  float m = p[0];
  if (n >= V::W) {
    typename V::reg acc = V::load(p);
    for (i = V::W; i + V::W <= n; i += V::W) acc = V::max(acc, V::load(p + i));
    m = V::hmax(acc);
  }
  for (; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}

static int64_t first_above(const float* p, int64_t from, int64_t n, float thr) {
  const typename V::reg t = V::set1(thr);
  int64_t i = from;
  for (; i + V::W <= n; i += V::W) {
    const unsigned mask = V::gt_mask(V::load(p + i), t);
    if (mask) return i + __builtin_ctz(mask);
  }
  for (; i < n; ++i) {
    if (p[i] > thr) return i;
  }
  return n;
}

static void to_f32(const Matrix& m, int64_t r0, int64_t r1, float* dst) {
  for (int64_t r = r0; r < r1; ++r, dst += m.cols) {
    if (m.dtype == DType::kF32) {
      std::memcpy(dst, detail::row_ptr<float>(m, r), sizeof(float) * m.cols);
      continue;
    }
    const uint16_t* p = detail::row_ptr<uint16_t>(m, r);
    int64_t i = 0;
    for (; i + V::W <= m.cols; i += V::W) V::store(dst + i, V::load(p + i));
    for (; i < m.cols; ++i) dst[i] = V::scalar(p[i]);
  }
}
