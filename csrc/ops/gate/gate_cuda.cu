// CUDA twin of the gate kernel (gate_cpu.cpp), for frames that already live on the device.
// Launches, all on one stream, one thread per sample pixel or patch:
//  1. count_inside: the region's strided mask (its area decides region or whole frame: the
//     count comes back to the host), and colour_count on the whole frame's sample;
//  2. sample_kernel: grey values, inside / pair flags and right neighbours into scratch,
//     a shared-memory histogram and per-block sums (count, grey, pairs, their grey sums);
//  3. with the means from 2 on the host: moments_kernel (centred second moments, |Laplacian|)
//     and speckle_kernel (each patch's mean/std ratio, or -1 when the patch is not kept).
// Per-block partial sums are added on the host in double (deterministic, no double atomics);
// the median and every figure are the shared host code of gate.h (finish).
// Built with --use_fast_math: the float steps the reference rounds exactly (grey value,
// patch variance and ratio) use the _rn intrinsics, which fast-math neither approximates nor
// contracts.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/device_buffer.h"
#include "common/errors.h"
#include "ops/gate/gate.h"

namespace usclip::gate {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kSums = 5;  // doubles per block in each reduction pass
constexpr uint8_t kInside = 1, kPair = 2;

void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw usclip::DeviceFailure(std::string(what) + " failed: " + cudaGetErrorName(err) + " (" +
                              cudaGetErrorString(err) + ")");
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ unsigned warp_sum(unsigned v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Every thread of the block calls this (it synchronises); thread 0 writes the block's sums.
__device__ void block_sums(const double (&v)[kSums], double* out) {
  __shared__ double part[kSums][kWarps];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int k = 0; k < kSums; ++k) {
    const double w = warp_sum(v[k]);
    if (lane == 0) part[k][warp] = w;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 0; k < kSums; ++k) {
      double t = 0;
      for (int i = 0; i < kWarps; ++i) t += part[k][i];
      out[static_cast<int64_t>(blockIdx.x) * kSums + k] = t;
    }
  }
}

__device__ __forceinline__ bool masked_in(const Mask& m, int64_t y, int64_t x) {
  return m.data[y * m.sy + x * m.sx] != 0;
}

__global__ void __launch_bounds__(kThreads) count_inside(Mask m, Plan p, unsigned long long* count) {
  const int64_t n = p.sh * p.sw;
  unsigned c = 0;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * kThreads)
    c += masked_in(m, p.box.y0 + (k / p.sw) * p.st, p.box.x0 + (k % p.sw) * p.st);
  c = warp_sum(c);
  if ((threadIdx.x & 31) == 0 && c) atomicAdd(count, static_cast<unsigned long long>(c));
}

__global__ void __launch_bounds__(kThreads) colour_count(Image im, int64_t fs, int64_t ch,
                                                         int64_t cw, unsigned long long* count) {
  unsigned c = 0;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; k < ch * cw;
       k += static_cast<int64_t>(gridDim.x) * kThreads) {
    const uint8_t* q = im.data + (k / cw) * fs * im.sy + (k % cw) * fs * im.sx;
    const int r = q[0], g = q[im.sc], b = q[2 * im.sc];
    c += max(max(r, g), b) - min(min(r, g), b) > kChroma;
  }
  c = warp_sum(c);
  if ((threadIdx.x & 31) == 0 && c) atomicAdd(count, static_cast<unsigned long long>(c));
}

struct SampleArgs {
  Image im;
  Mask m;
  Plan p;
  float *g, *right;
  uint8_t* flags;
  unsigned* hist;   // 256 bins
  double* partial;  // per block: inside, grey sum, pairs, pair sums a and b
};

__global__ void __launch_bounds__(kThreads) sample_kernel(SampleArgs a) {
  __shared__ unsigned hist[256];
  for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
  __syncthreads();
  double v[kSums] = {0, 0, 0, 0, 0};
  const int64_t k = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (k < a.p.sh * a.p.sw) {
    const int64_t y = a.p.box.y0 + (k / a.p.sw) * a.p.st, x = a.p.box.x0 + (k % a.p.sw) * a.p.st;
    const bool rgb = a.im.c >= 3;
    const uint8_t* q = a.im.data + y * a.im.sy + x * a.im.sx;
    const float g = grey_at(q, a.im.sc, rgb);
    uint8_t f = 0;
    a.g[k] = g;
    if (a.p.whole || masked_in(a.m, y, x)) {
      f = kInside;
      atomicAdd(&hist[static_cast<int>(g)], 1u);  // truncation, as astype(uint8); g <= 255
      v[0] = 1;
      v[1] = g;
      // The right-hand column exists up to the frame's edge, not the box's.
      if (x + 1 < a.im.w && (a.p.whole || masked_in(a.m, y, x + 1))) {
        const float r = grey_at(q + a.im.sx, a.im.sc, rgb);
        a.right[k] = r;
        f |= kPair;
        v[2] = 1;
        v[3] = g;
        v[4] = r;
      }
    }
    a.flags[k] = f;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += kThreads)
    if (hist[i]) atomicAdd(&a.hist[i], hist[i]);
  block_sums(v, a.partial);
}

struct MomentArgs {
  Plan p;
  const float *g, *right;
  const uint8_t* flags;
  double mean, ma, mb;
  double* partial;  // per block: squared deviations, |Laplacian|, saa, sbb, sab
};

__global__ void __launch_bounds__(kThreads) moments_kernel(MomentArgs a) {
  double v[kSums] = {0, 0, 0, 0, 0};
  const int64_t k = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (k < a.p.sh * a.p.sw) {
    const uint8_t f = a.flags[k];
    const int64_t i = k / a.p.sw, j = k % a.p.sw, sw = a.p.sw;
    if (f & kInside) {
      const double g = a.g[k], d = g - a.mean;
      v[0] = d * d;
      const int64_t up = reflect101(i - 1, a.p.sh), down = reflect101(i + 1, a.p.sh);
      const int64_t l = reflect101(j - 1, sw), r = reflect101(j + 1, sw);
      v[1] = fabs(static_cast<double>(a.g[up * sw + j]) + a.g[down * sw + j] + a.g[i * sw + l] +
                  a.g[i * sw + r] - 4.0 * g);
    }
    if (f & kPair) {
      const double da = a.g[k] - a.ma, db = a.right[k] - a.mb;
      v[2] = da * da;
      v[3] = db * db;
      v[4] = da * db;
    }
  }
  block_sums(v, a.partial);
}

// One thread per patch; ratio -1 marks a patch that is not kept.
__global__ void __launch_bounds__(kThreads) speckle_kernel(Plan p, const float* g,
                                                           const uint8_t* flags, float* ratio) {
  const int64_t pw = patch_count(p.sw), n = patch_count(p.sh) * pw;
  const int64_t k = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (k >= n) return;
  const int64_t cy = kPatch / 2 + (k / pw) * kPatch, cx = kPatch / 2 + (k % pw) * kPatch;
  double s1 = 0, s2 = 0;
  int inside = 0;
  for (int dy = -kPatch / 2; dy < kPatch / 2; ++dy) {
    const int64_t row = reflect101(cy + dy, p.sh) * p.sw;
    for (int dx = -kPatch / 2; dx < kPatch / 2; ++dx) {
      const int64_t q = row + reflect101(cx + dx, p.sw);
      const float v = g[q];
      s1 += v;
      s2 += __fmul_rn(v, v);
      inside += flags[q] & kInside;
    }
  }
  float out = -1.0f;
  if (inside == kPatch * kPatch) {
    constexpr double kInv = 1.0 / (kPatch * kPatch);  // a power of two: exact
    const float mean = __double2float_rn(s1 * kInv), e2 = __double2float_rn(s2 * kInv);
    const float var = __fsub_rn(e2, __fmul_rn(mean, mean));
    if (mean > static_cast<float>(kDark) && var > 1e-6f) out = __fdiv_rn(mean, __fsqrt_rn(var));
  }
  ratio[k] = out;
}

// Device scratch, freed stream-ordered however the call ends.
struct Scratch {
  void* stream;
  std::vector<void*> held;
  explicit Scratch(void* s) : stream(s) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    for (void* p : held) device_free_async(p, stream);
  }
  template <class T>
  T* alloc(size_t count) {
    held.push_back(device_malloc_async(std::max<size_t>(count, 1) * sizeof(T), stream));
    return static_cast<T*>(held.back());
  }
};

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void launched(const char* what) { check(cudaGetLastError(), what); }

template <class T>
void to_host(T* dst, const T* src, size_t count, cudaStream_t s) {
  if (count) check(cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyDeviceToHost, s),
                   "cudaMemcpyAsync(device to host)");
}

}  // namespace

Figures run_cuda(const Image& image, bool pixels_on_device, const Mask& mask, bool mask_on_device,
                 const Box& b, void* stream) {
  validate(image, mask, b);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  Scratch scratch(stream);
  Image im = image;
  Mask m = mask;
  if (!pixels_on_device) {  // stage the frame (the colour figure samples all of it)
    const int64_t row = im.w * im.c;
    if (im.sx != im.c || im.sc != 1 || im.sy < row)
      throw std::invalid_argument("pixels: host input for CUDA needs contiguous rows (pass a C-contiguous array)");
    auto* d = scratch.alloc<uint8_t>(static_cast<size_t>(row * im.h));
    memcpy_htod_2d(d, row, im.data, im.sy, row, im.h, stream);
    im.data = d;
    im.sy = row;
  }
  if (!mask_on_device) {
    if (m.sx != 1 || m.sy < im.w)
      throw std::invalid_argument("mask: host input for CUDA needs contiguous rows (pass a C-contiguous array)");
    auto* d = scratch.alloc<uint8_t>(static_cast<size_t>(im.w * im.h));
    memcpy_htod_2d(d, im.w, m.data, m.sy, im.w, im.h, stream);
    m.data = d;
    m.sy = im.w;
  }

  const Plan region = region_plan(b), whole = whole_plan(im.h, im.w);
  const int64_t most = std::max(region.sh * region.sw, whole.sh * whole.sw);
  auto* counts = scratch.alloc<unsigned long long>(2);  // inside, coloured
  auto* hist = scratch.alloc<unsigned>(256);
  auto* partial = scratch.alloc<double>(static_cast<size_t>(2 * kSums * blocks_for(most)));
  auto* g = scratch.alloc<float>(most);
  auto* right = scratch.alloc<float>(most);
  auto* flags = scratch.alloc<uint8_t>(most);
  check(cudaMemsetAsync(counts, 0, 2 * sizeof(unsigned long long), s), "cudaMemsetAsync");
  check(cudaMemsetAsync(hist, 0, 256 * sizeof(unsigned), s), "cudaMemsetAsync");

  if (region.sh * region.sw > 0) {
    count_inside<<<blocks_for(region.sh * region.sw), kThreads, 0, s>>>(m, region, counts);
    launched("gate count_inside launch");
  }
  const int64_t fs = stride_for(std::max(im.h, im.w)), ch = ceil_div(im.h, fs), cw = ceil_div(im.w, fs);
  if (im.c >= 3) {
    colour_count<<<blocks_for(ch * cw), kThreads, 0, s>>>(im, fs, ch, cw, counts + 1);
    launched("gate colour_count launch");
  }
  unsigned long long inside = 0;
  to_host(&inside, counts, 1, s);
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  const double area = area_fraction(static_cast<int64_t>(inside), region.st, im.h, im.w);
  const Plan p = area < kMinRegion ? whole : region;
  const int64_t n = p.sh * p.sw;
  const unsigned nb = blocks_for(n);

  sample_kernel<<<nb, kThreads, 0, s>>>(SampleArgs{im, m, p, g, right, flags, hist, partial});
  launched("gate sample_kernel launch");
  std::vector<double> part(static_cast<size_t>(kSums) * nb);
  std::vector<unsigned> bins(256);
  to_host(part.data(), partial, part.size(), s);
  to_host(bins.data(), hist, bins.size(), s);
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  double sum[kSums] = {0, 0, 0, 0, 0};
  for (unsigned blk = 0; blk < nb; ++blk)
    for (int k = 0; k < kSums; ++k) sum[k] += part[blk * kSums + k];
  Sums sums;
  sums.n = static_cast<int64_t>(sum[0]);
  for (int i = 0; i < 256; ++i) sums.hist[i] = bins[i];
  if (sums.n < kMinPixels) return finish(p, area, sums);
  sums.mean = sum[1] / sum[0];
  sums.pairs = static_cast<int64_t>(sum[2]);
  const double ma = sums.pairs ? sum[3] / sum[2] : 0.0, mb = sums.pairs ? sum[4] / sum[2] : 0.0;

  double* partial2 = partial + static_cast<size_t>(kSums) * nb;
  moments_kernel<<<nb, kThreads, 0, s>>>(MomentArgs{p, g, right, flags, sums.mean, ma, mb, partial2});
  launched("gate moments_kernel launch");
  const int64_t patches = std::min(p.sh, p.sw) < kPatch ? 0 : patch_count(p.sh) * patch_count(p.sw);
  float* ratio = nullptr;
  if (patches > 0) {
    ratio = scratch.alloc<float>(patches);
    speckle_kernel<<<blocks_for(patches), kThreads, 0, s>>>(p, g, flags, ratio);
    launched("gate speckle_kernel launch");
  }
  std::vector<float> ratios(static_cast<size_t>(patches));
  unsigned long long coloured = 0;
  to_host(part.data(), partial2, part.size(), s);
  to_host(ratios.data(), ratio, ratios.size(), s);
  to_host(&coloured, counts + 1, 1, s);
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  double m2[kSums] = {0, 0, 0, 0, 0};
  for (unsigned blk = 0; blk < nb; ++blk)
    for (int k = 0; k < kSums; ++k) m2[k] += part[blk * kSums + k];
  sums.ssd = m2[0];
  sums.lap = m2[1];
  if (sums.pairs >= 8) {
    sums.saa = m2[2];
    sums.sbb = m2[3];
    sums.sab = m2[4];
  }
  for (float r : ratios)
    if (r >= 0) sums.snr.push_back(r);
  if (im.c >= 3) {
    sums.coloured = static_cast<int64_t>(coloured);
    sums.colour_total = ch * cw;
  }
  return finish(p, area, sums);
}

}  // namespace usclip::gate
