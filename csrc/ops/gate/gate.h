// The input-quality gate's figures (usclip_sdk.quality) in one native pass over a strided
// sample of at most 96 px a side. Plain C++ (no Python, no CUDA headers): the CPU kernel is in
// gate_cpu.cpp (its body in gate_kernel.inl), the CUDA twin in gate_cuda.cu; both implement
// the numpy reference python/usclip_sdk/ops/gate_reference.py.
//
// Exactness: the reference works in float32. Whatever decides a count - the grey value
// (r + g + b) * float(1/3) and its uint8 truncation (histogram, p99, dark, flat, grey levels),
// and the speckle patches' box mean, variance and mean/std ratio (cv2.blur sums a float32 image
// in double, exactly: 64 values of at most 49 significant bits) - is reproduced bit for bit
// here, so those figures are identical. The moments (std, mean, correlation, texture) use
// double accumulators where the reference uses float32 ones: they agree to ~1e-6 relative.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__CUDACC__)
#define USCLIP_GATE_HD __host__ __device__ __forceinline__
#else
#define USCLIP_GATE_HD inline
#endif

namespace usclip::gate {

constexpr int kSide = 96;         // the strided sample's longer side, at most
constexpr int kChroma = 24;       // max-min channel difference of a coloured pixel
constexpr int kDark = 16;         // grey level below which a pixel is dark
constexpr int kPatch = 8;         // speckle patches: k x k box at centres k/2 + k*i
constexpr int64_t kMinPixels = 16;  // fewer sampled pixels inside: no figures
constexpr double kMinRegion = 0.04;  // a smaller region is a detection failure: whole frame

// uint8 pixels H x W x C: C = 1 (grey) or >= 3 (the first three are R, G, B). Byte strides,
// any sign: only ~2 x 96 x 96 pixels are read, so no layout is worth a copy on the CPU.
struct Image {
  const uint8_t* data = nullptr;  // address of pixel [0, 0, 0]
  int64_t h = 0, w = 0, c = 0;
  int64_t sy = 0, sx = 0, sc = 0;
};

// uint8 (or bool) mask H x W, nonzero inside the imaging region; byte strides.
struct Mask {
  const uint8_t* data = nullptr;
  int64_t sy = 0, sx = 0;
};

struct Box {
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // half-open, inside the frame
};

// Where the figures are measured: the sample's rows y0 + i*st, columns x0 + j*st.
struct Plan {
  Box box;
  int64_t st = 1, sh = 0, sw = 0;
  bool whole = false;  // the region was a sliver: the whole frame, every pixel "inside"
};

// Unrounded figures (usclip_sdk.ops.gate.GateFigures); with pixels < kMinPixels only pixels,
// area and whole_frame are set.
struct Figures {
  int64_t pixels = 0;
  double area = 0;
  bool whole_frame = false;
  double contrast = 0, mean = 0, p99 = 0, dark = 0, colour = 0;
  int64_t grey_levels = 0;
  double flat = 0, correlation = 1, texture = 0, speckle_snr = 0;
};

// What a kernel measures; finish() turns it into Figures the same way for both kernels.
struct Sums {
  int64_t n = 0;                    // sampled pixels inside
  std::array<int64_t, 256> hist{};  // of uint8(grey) inside
  double mean = 0, ssd = 0;         // grey mean and sum of squared deviations, inside
  double lap = 0;                   // sum of |Laplacian| inside
  int64_t pairs = 0;                // (pixel, right neighbour) pairs, both inside
  double saa = 0, sbb = 0, sab = 0;  // their centred second moments
  int64_t coloured = 0, colour_total = 0;  // whole-frame sample (colour_total 0: grey frame)
  std::vector<float> snr;           // mean/std of each kept speckle patch
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t stride_for(int64_t side) { return std::max<int64_t>(1, ceil_div(side, kSide)); }

// Throws std::invalid_argument naming the argument.
inline void validate(const Image& im, const Mask& m, const Box& b) {
  auto bad = [](const std::string& s) { throw std::invalid_argument(s); };
  if (im.h < 1 || im.w < 1) bad("pixels: empty frame");
  if (!(im.c == 1 || im.c >= 3)) bad("pixels: expected 1 or at least 3 channels");
  if (!im.data) bad("pixels: null data pointer");
  if (!m.data) bad("mask: null data pointer");
  if (!(0 <= b.x0 && b.x0 <= b.x1 && b.x1 <= im.w && 0 <= b.y0 && b.y0 <= b.y1 && b.y1 <= im.h))
    bad("bbox: expected 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height");
}

// The region's own sample (st from the bbox's longer side).
inline Plan region_plan(const Box& b) {
  Plan p;
  p.box = b;
  p.st = stride_for(std::max(b.y1 - b.y0, b.x1 - b.x0));
  p.sh = ceil_div(b.y1 - b.y0, p.st);
  p.sw = ceil_div(b.x1 - b.x0, p.st);
  return p;
}

inline Plan whole_plan(int64_t h, int64_t w) {
  Plan p = region_plan(Box{0, 0, w, h});
  p.whole = true;
  return p;
}

// Area fraction from the strided mask, in the reference's order of operations.
inline double area_fraction(int64_t inside, int64_t st, int64_t h, int64_t w) {
  return static_cast<double>(inside) * st * st / static_cast<double>(h * w);
}

// numpy's float32 (r + g + b) * float32(1/3): exact integer sum, one rounded multiply (the
// CUDA twin spells it __fmul_rn: fast-math must not touch it, the histogram depends on it).
#if defined(__CUDA_ARCH__)
#define USCLIP_GATE_FMUL(a, b) __fmul_rn(a, b)
#else
#define USCLIP_GATE_FMUL(a, b) ((a) * (b))
#endif
USCLIP_GATE_HD float grey_at(const uint8_t* px, int64_t sc, bool rgb) {
  if (!rgb) return static_cast<float>(px[0]);
  const int s = static_cast<int>(px[0]) + px[sc] + px[2 * sc];
  return USCLIP_GATE_FMUL(static_cast<float>(s), static_cast<float>(1.0 / 3.0));
}

// OpenCV's BORDER_REFLECT_101 for an index at most one period outside [0, n).
USCLIP_GATE_HD int64_t reflect101(int64_t i, int64_t n) {
  if (n == 1) return 0;
  return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i);
}

// Patch centres along a sample side (k/2, k/2 + k, ... below n).
USCLIP_GATE_HD int64_t patch_count(int64_t n) { return n > kPatch / 2 ? (n - kPatch / 2 + kPatch - 1) / kPatch : 0; }

// np.median of the float32 ratios: the middle one, or the float32 mean of the middle two.
inline float median(std::vector<float>& v) {
  if (v.empty()) return 0.0f;
  const size_t k = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + k, v.end());
  const float hi = v[k];
  if (v.size() % 2) return hi;
  const float lo = *std::max_element(v.begin(), v.begin() + k);
  const float s = lo + hi;
  return s * 0.5f;
}

inline Figures finish(const Plan& p, double area, Sums& s) {
  Figures f;
  f.pixels = s.n;
  f.area = area;
  f.whole_frame = p.whole;
  if (s.n < kMinPixels) return f;
  const double n = static_cast<double>(s.n);
  f.mean = s.mean;
  f.contrast = std::sqrt(s.ssd / n);
  const double target = 0.99 * n;  // np.searchsorted(cdf, 0.99 * n): first bin reaching it
  int64_t cdf = 0, dark = 0, bright = 0, top = 0;
  f.p99 = 256;
  for (int i = 0; i < 256; ++i) {
    cdf += s.hist[i];
    if (f.p99 == 256 && static_cast<double>(cdf) >= target) f.p99 = i;
    f.grey_levels += s.hist[i] != 0;
    if (i < kDark) {
      dark += s.hist[i];
    } else {
      bright += s.hist[i];
      top = std::max(top, s.hist[i]);
    }
  }
  f.dark = static_cast<double>(dark) / n;
  f.flat = bright ? static_cast<double>(top) / static_cast<double>(bright) : 0.0;
  const double den = std::sqrt(s.saa * s.sbb);
  f.correlation = s.pairs < 8 || !(den > 0) ? 1.0 : s.sab / den;  // constant: not noise
  f.texture = s.lap / n / std::max(f.contrast, 1e-3);
  f.colour = s.colour_total ? static_cast<double>(s.coloured) / s.colour_total : 0.0;
  f.speckle_snr = median(s.snr);
  return f;
}

// CPU kernel (single thread: the sample is ~10k pixels, less work than a pool hand-off).
Figures run_cpu(const Image& im, const Mask& m, const Box& b);
// Which copy of it runs here ("avx2+fma" or "generic").
const char* cpu_kernel_variant();

// CUDA twin (CUDA builds only). Device inputs are read in place (any strides); host inputs
// must have contiguous rows (sx == c, sc == 1) and are staged whole. Synchronises `stream`
// (a cudaStream_t; nullptr: the legacy default stream) before returning; CUDA failures throw
// usclip::DeviceFailure, bad arguments std::invalid_argument.
Figures run_cuda(const Image& im, bool pixels_on_device, const Mask& m, bool mask_on_device,
                 const Box& b, void* stream);

}  // namespace usclip::gate
