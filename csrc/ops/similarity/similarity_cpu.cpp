// CPU similarity: dot products (fused single pass for small N, cache-blocked tiles for large N)
// followed by a fused per-row epilogue (normalise, scale, softmax per group, top-k, argmax).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/parallel.h"
#include "ops/similarity/similarity.h"
#include "ops/similarity/similarity_kernels.h"

namespace usclip::similarity {
namespace {

using detail::Kernels;
using detail::row_ptr;

constexpr int64_t kSmallN = 4;  // up to this many rows: one pass over C computes every dot

float element(const Matrix& m, int64_t r, int64_t i) {
  if (m.dtype == DType::kF32) return row_ptr<float>(m, r)[i];
  return detail::half_to_float(row_ptr<uint16_t>(m, r)[i]);
}

// Turns squared norms into what the epilogue multiplies by, checking every row. A row whose
// float sum of squares is not finite is either non-finite (an error) or so large that it
// overflowed (recomputed in double); tiny sums are recomputed in double for the same reason.
// Returns false when some row's norm is outside float's safe range (caller rescales).
bool finish_norms(const Matrix& m, const char* name, bool normalize, std::vector<float>& sq) {
  bool safe = true;
  for (int64_t r = 0; r < m.rows; ++r) {
    float s = sq[r];
    if (std::isfinite(s) && (!normalize || (s >= 1e-30f && s <= 1e30f))) {
      sq[r] = normalize ? 1.0f / std::sqrt(s) : 1.0f;
      continue;
    }
    double ds = 0.0;
    for (int64_t i = 0; i < m.cols; ++i) {
      const float v = element(m, r, i);
      if (!std::isfinite(v)) {
        throw InputError(std::string(name) + " row " + std::to_string(r) + " column " +
                         std::to_string(i) + " is " + (std::isnan(v) ? "NaN" : "infinite") +
                         "; embeddings must be finite");
      }
      ds += static_cast<double>(v) * v;
    }
    if (normalize && ds == 0.0) {
      throw InputError(std::string(name) + " row " + std::to_string(r) +
                       " has zero L2 norm and cannot be normalised (normalize=True)");
    }
    if (normalize) safe = false;
    sq[r] = normalize ? static_cast<float>(1.0 / std::sqrt(ds)) : 1.0f;
  }
  return safe;
}

// A float32 copy of m with every row scaled to unit length (computed in double): used when
// some row's norm is so large or small that float dot products would overflow or underflow.
std::vector<float> unit_rows(const Matrix& m) {
  std::vector<float> out(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) {
    double ds = 0.0, mx = 0.0;
    for (int64_t i = 0; i < m.cols; ++i) mx = std::max(mx, std::fabs(double(element(m, r, i))));
    for (int64_t i = 0; i < m.cols; ++i) {
      const double v = element(m, r, i) / mx;
      ds += v * v;
    }
    const double inv = 1.0 / (mx * std::sqrt(ds));
    for (int64_t i = 0; i < m.cols; ++i) out[r * m.cols + i] = float(element(m, r, i) * inv);
  }
  return out;
}

// Indices of the k largest values, descending; equal values keep the lower index first.
void top_k(const Kernels& kr, const float* v, int64_t n, int64_t k, int64_t* idx, float* val) {
  if (k == 0) return;
  if (k <= 16) {
    for (int64_t j = 0; j < k; ++j) {  // seed with the first k, insertion-sorted
      int64_t p = j;
      for (; p > 0 && val[p - 1] < v[j]; --p) {
        val[p] = val[p - 1];
        idx[p] = idx[p - 1];
      }
      val[p] = v[j];
      idx[p] = j;
    }
    // Then only values strictly above the current k-th can enter (ties keep the lower index);
    // a vector compare skips the rest eight at a time.
    for (int64_t j = kr.first_above(v, k, n, val[k - 1]); j < n;
         j = kr.first_above(v, j + 1, n, val[k - 1])) {
      int64_t p = k - 1;
      for (; p > 0 && val[p - 1] < v[j]; --p) {
        val[p] = val[p - 1];
        idx[p] = idx[p - 1];
      }
      val[p] = v[j];
      idx[p] = j;
    }
    return;
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) order[j] = j;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [v](int64_t a, int64_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
  });
  for (int64_t i = 0; i < k; ++i) {
    idx[i] = order[i];
    val[i] = v[order[i]];
  }
}

struct Epilogue {
  const Options& opt;
  const Outputs& out;
  const Kernels& kr;
  int64_t K;
  const float* cinv;                 // 1/|c_k| (or 1, or the prepared class_scale)
  const std::vector<float>* xinv;    // 1/|x_n| (or 1)

  // src: the row's raw dot products (may alias the logits row).
  void row(int64_t n, const float* src, float xinv) const {
    float* l = out.logits + n * K;
    float* p = out.probs + n * K;
    if (!kr.affine(src, cinv, opt.scale * xinv, opt.bias, l, K)) {
      throw InputError("logits of image_emb row " + std::to_string(n) +
                       " overflow float32 (embedding magnitudes or scale too large); "
                       "normalise the embeddings or lower scale");
    }
    const int64_t G = opt.groups > 0 ? opt.groups : 1;
    const int64_t whole[2] = {0, K};
    const int64_t* off = opt.groups > 0 ? opt.group_offsets : whole;
    float gmax = -FLT_MAX;
    double z = 0.0;  // sum over groups of exp(m_g - gmax) * s_g, for global top-k probabilities
    float ms[64];
    double ss[64];
    for (int64_t g = 0; g < G; ++g) {
      const int64_t o = off[g], len = off[g + 1] - off[g];
      const float m = kr.vmax(l + o, len);
      int64_t am = o;
      while (l[am] != m) ++am;  // the first maximum: ties go to the lower index
      const float s = kr.exp_shift_sum(l + o, m, p + o, len);
      const float inv = 1.0f / s;
      for (int64_t j = o; j < o + len; ++j) p[j] *= inv;
      if (opt.groups > 0) {
        out.group_argmax[n * G + g] = am;
        out.group_probs[n * G + g] = p[am];
        if (g < 64) {
          ms[g] = m;
          ss[g] = s;
        }
      }
      gmax = std::max(gmax, m);
    }
    const int64_t k = opt.topk;
    if (k == 0) return;
    int64_t* ti = out.topk_indices + n * k;
    float* tv = out.topk_values + n * k;
    top_k(kr, l, K, k, ti, tv);
    if (opt.groups == 0) {
      for (int64_t i = 0; i < k; ++i) tv[i] = p[ti[i]];
      return;
    }
    for (int64_t g = 0; g < G; ++g) {
      if (g < 64) {
        z += std::exp(double(ms[g]) - gmax) * ss[g];
      } else {  // many groups: recompute the group's sum against the global maximum
        for (int64_t j = off[g]; j < off[g + 1]; ++j) z += std::exp(double(l[j]) - gmax);
      }
    }
    for (int64_t i = 0; i < k; ++i) tv[i] = float(std::exp(double(l[ti[i]]) - gmax) / z);
  }
};

void norms(const Kernels& kr, const Matrix& m, std::vector<float>& sq) {
  sq.resize(static_cast<size_t>(m.rows));
  parallel_for(static_cast<size_t>(m.rows),
               [&](size_t b, size_t e) { kr.sumsq(m, int64_t(b), int64_t(e), sq.data() + b); },
               std::max<size_t>(16, size_t(262144 / std::max<int64_t>(m.cols, 1))));
}

}  // namespace

void validate(const Matrix& image, const Matrix& classes, const Options& opt) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument(msg); };
  if (!image.data && image.rows > 0) fail("image_emb: null data");
  if (!classes.data) fail("class_emb: null data");
  if (classes.rows < 1) fail("class_emb must have at least one row (K >= 1), found K=0");
  if (image.rows < 0) fail("image_emb: negative row count");
  if (image.cols < 1) fail("image_emb must have D >= 1 columns, found D=0");
  if (classes.cols != image.cols) {
    fail("class_emb has D=" + std::to_string(classes.cols) + " columns but image_emb has D=" +
         std::to_string(image.cols) + "; both must share the embedding width");
  }
  if (!std::isfinite(opt.scale)) fail("scale must be finite");
  if (!std::isfinite(opt.bias)) fail("bias must be finite");
  if (opt.topk < 0 || opt.topk > classes.rows) {
    fail("topk must be in [0, K=" + std::to_string(classes.rows) + "] after clamping, found " +
         std::to_string(opt.topk));
  }
  if (opt.groups < 0 || (opt.groups > 0 && !opt.group_offsets)) fail("groups: bad offsets");
  if (opt.groups > 0) {
    if (opt.group_offsets[0] != 0 || opt.group_offsets[opt.groups] != classes.rows) {
      fail("groups must cover the K=" + std::to_string(classes.rows) + " classes exactly");
    }
    for (int64_t g = 0; g < opt.groups; ++g) {
      if (opt.group_offsets[g + 1] <= opt.group_offsets[g]) fail("groups: every size must be >= 1");
    }
  }
}

const char* cpu_kernel_variant() { return detail::kernels().name; }

namespace {
Matrix widen(const Kernels& kr, const Matrix& m, std::vector<float>& buf);
void blocked(const Kernels& kr, const Matrix& image, const Matrix& classes, const Outputs& out,
             const Epilogue& epi);
}  // namespace

void similarity_cpu(const Matrix& image, const Matrix& classes, const Options& opt,
                    const Outputs& out) {
  validate(image, classes, opt);
  const int64_t N = image.rows, K = classes.rows, D = image.cols;
  if (N == 0) return;
  const Kernels& kr = detail::kernels();
  std::vector<float> cinv, xinv;
  const bool fused = !opt.dots && N <= kSmallN;
  const bool prepared = opt.class_scale != nullptr;  // class factors known: no class norms
  if (fused) {
    // One pass over C: every class row is loaded once for all N image rows (and its own norm
    // unless prepared).
    if (!prepared) cinv.resize(static_cast<size_t>(K));
    parallel_for(static_cast<size_t>(K), [&](size_t b, size_t e) {
      kr.dots(image, 0, int(N), classes, int64_t(b), int64_t(e), out.logits + b, K,
              prepared ? nullptr : cinv.data() + b);
    }, std::max<size_t>(64, size_t((1 << 20) / (D * (N + 1)))));  // ~1M MACs per thread:
    // waking a worker costs more than a smaller share (measured on the 2-core dev box)
    xinv.resize(static_cast<size_t>(N));
    kr.sumsq(image, 0, N, xinv.data());
  } else {
    if (!prepared) norms(kr, classes, cinv);
    norms(kr, image, xinv);
  }
  const bool safe_c = prepared || finish_norms(classes, "class_emb", opt.normalize, cinv);
  const bool safe_x = finish_norms(image, "image_emb", opt.normalize, xinv);
  if (!safe_c || !safe_x) {
    // Norms beyond float's comfortable range: rerun on unit-length float32 copies (rare).
    std::vector<float> uc, ux;
    Matrix c2 = classes, x2 = image;
    if (!safe_c) { uc = unit_rows(classes); c2 = Matrix{uc.data(), DType::kF32, K, D, D}; }
    if (!safe_x) { ux = unit_rows(image); x2 = Matrix{ux.data(), DType::kF32, N, D, D}; }
    Options o2 = opt;
    o2.dots = nullptr;
    return similarity_cpu(x2, c2, o2, out);
  }
  const Epilogue epi{opt, out, kr, K, prepared ? opt.class_scale : cinv.data(), &xinv};
  const size_t rows_per_chunk = std::max<size_t>(1, size_t(32768 / K));
  if (fused) {
    for (int64_t n = 0; n < N; ++n) epi.row(n, out.logits + n * K, xinv[n]);
    return;
  }
  if (opt.dots) {
    parallel_for(static_cast<size_t>(N), [&](size_t b, size_t e) {
      for (size_t n = b; n < e; ++n) epi.row(int64_t(n), opt.dots + n * K, xinv[n]);
    }, rows_per_chunk);
    return;
  }
  // float16 operands are widened once here: the tile loop reloads each class row N/4 times,
  // and converting on every load would cost more than the one pass.
  if (image.dtype == DType::kF16 || classes.dtype == DType::kF16) {
    std::vector<float> xf, cf;
    return blocked(kr, widen(kr, image, xf), widen(kr, classes, cf), out, epi);
  }
  blocked(kr, image, classes, out, epi);
}

namespace {

Matrix widen(const Kernels& kr, const Matrix& m, std::vector<float>& buf) {
  if (m.dtype == DType::kF32) return m;
  buf.resize(static_cast<size_t>(m.rows * m.cols));
  parallel_for(static_cast<size_t>(m.rows), [&](size_t b, size_t e) {
    kr.to_f32(m, int64_t(b), int64_t(e), buf.data() + b * m.cols);
  }, 64);
  return Matrix{buf.data(), DType::kF32, m.rows, m.cols, m.cols};
}

void blocked(const Kernels& kr, const Matrix& image, const Matrix& classes, const Outputs& out,
             const Epilogue& epi) {
  const int64_t N = image.rows, K = classes.rows, D = image.cols;
  const std::vector<float>& xinv = *epi.xinv;
  // Large N: threads own blocks of image rows; inside, a chunk of classes small enough to stay
  // in L2 is swept by every 4-row tile before moving on, then the rows' epilogues run while
  // their logits are still in cache.
  const int64_t cb = std::max<int64_t>(12, (196608 / (D * 4)) / 12 * 12);
  const size_t blocks = size_t((N + 3) / 4);
  parallel_for(blocks, [&](size_t b, size_t e) {
    const int64_t r0 = int64_t(b) * 4, r1 = std::min<int64_t>(N, int64_t(e) * 4);
    for (int64_t j0 = 0; j0 < K; j0 += cb) {
      const int64_t j1 = std::min(K, j0 + cb);
      for (int64_t r = r0; r < r1; r += 4) {
        kr.dots(image, r, int(std::min<int64_t>(4, r1 - r)), classes, j0, j1,
                out.logits + r * K + j0, K, nullptr);
      }
    }
    for (int64_t n = r0; n < r1; ++n) epi.row(n, out.logits + n * K, xinv[n]);
  }, std::max<size_t>(1, size_t((1 << 21) / (4 * K * D))), size_t(4 * num_threads()));
}

}  // namespace

}  // namespace usclip::similarity
