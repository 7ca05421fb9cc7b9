// CUDA preprocessing kernel: one launch per batch (grid: output column tiles x output rows x
// frames). A block makes one output row segment of one frame: its threads first run the
// vertical pass over the source columns the segment needs (coalesced byte reads, mask
// applied per source pixel) into shared memory, then each thread finishes one output pixel
// with the horizontal pass, normalises and stores the three NCHW planes. Weights are
// computed in-kernel from the shared window formula (preprocess.h): nothing to upload.
// Source spans wider than shared memory (extreme downscales) are walked in segments.
#include "common/errors.h"
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "common/device_buffer.h"
#include "ops/preprocess/preprocess.h"

namespace usclip::preprocess {
namespace {

constexpr int kThreads = 256;   // also the most output columns per block
constexpr int kSegCols = 2048;  // shared columns: 2048 x 4 floats = 32 KiB (static)

struct KParams {
  const uint8_t* src;  // crop origin of frame 0: element [0, roi_y0, roi_x0, 0]
  int64_t stride_n, stride_h;
  const uint8_t* mask;  // crop origin of mask 0, or nullptr
  int64_t mstride_n, mstride_h;
  int c, planes;        // source channels; planes kept (1 for gray, else 3)
  int ch[3];            // source channel of plane p
  int crop_w, crop_h;
  int out_h, out_w, px, py, pw, ph;
  float fill[3], scale[3], bias[3], pad[3];
  int tile_w;
  int n0;               // first frame of this launch (batches above 65535 frames)
  void* out;
  bool fp16;
};

__device__ __forceinline__ void put(const KParams& k, size_t idx, float v) {
  if (k.fp16) static_cast<__half*>(k.out)[idx] = __float2half_rn(v);
  else static_cast<float*>(k.out)[idx] = v;
}

__device__ __forceinline__ float window_total(const Window& w) {
  float t = 0.f;
  for (int k = 0; k < w.hi - w.lo; ++k) t += tap(w, k);
  return t;
}

// Vertical pass over source columns [s0, s1) of one output row into shared memory: planes
// 0..2 (colour) and 3 (weight of unmasked pixels). Masked pixels add nothing.
__device__ __forceinline__ void vertical(const KParams& k, const Window& wy, float inv_ty,
                                         const uint8_t* src, const uint8_t* msk, int s0, int s1,
                                         float (*sm)[kSegCols]) {
  for (int x = s0 + threadIdx.x; x < s1; x += blockDim.x) {
    float v[3] = {0.f, 0.f, 0.f}, kw = 0.f;
    for (int t = 0; t < wy.hi - wy.lo; ++t) {
      const int64_t y = wy.lo + t;
      if (msk && msk[y * k.mstride_h + x] == 0) continue;
      const float w = tap(wy, t) * inv_ty;
      const uint8_t* px = src + y * k.stride_h + static_cast<int64_t>(x) * k.c;
      // Fixed trip count, unrolled: v[] and acc[] stay in registers (no local memory).
#pragma unroll
      for (int p = 0; p < 3; ++p)
        if (p < k.planes) v[p] += w * static_cast<float>(px[k.ch[p]]);
      kw += w;
    }
#pragma unroll
    for (int p = 0; p < 3; ++p)
      if (p < k.planes) sm[p][x - s0] = v[p];
    sm[3][x - s0] = kw;
  }
}

__global__ void __launch_bounds__(kThreads) preprocess_kernel(KParams k) {
  __shared__ float sm[4][kSegCols];  // planes 0..2 + kept weight
  const int row = blockIdx.y;
  const int64_t n = k.n0 + blockIdx.z;
  const int J = blockIdx.x * k.tile_w + threadIdx.x;  // this thread's output column
  const bool mine = threadIdx.x < k.tile_w && J < k.out_w;
  const size_t plane = static_cast<size_t>(k.out_h) * k.out_w;
  const size_t o = (static_cast<size_t>(n) * 3 * k.out_h + row) * k.out_w + J;
  const int i = row - k.py;
  if (i < 0 || i >= k.ph) {  // letterbox band: uniform across the block
    if (mine) for (int c = 0; c < 3; ++c) put(k, o + c * plane, k.pad[c]);
    return;
  }
  // Content columns of this tile: [j0, j1) in resized-content coordinates.
  const int T0 = blockIdx.x * k.tile_w;
  const int T1 = min(T0 + k.tile_w, k.out_w);
  const int j0 = max(T0, k.px) - k.px, j1 = min(T1, k.px + k.pw) - k.px;
  const int j = J - k.px;
  const bool content = mine && j >= 0 && j < k.pw;
  if (mine && !content) for (int c = 0; c < 3; ++c) put(k, o + c * plane, k.pad[c]);
  if (j0 >= j1) return;  // uniform: the whole tile is padding

  const Window wy = window(i, k.crop_h, k.ph);
  const float inv_ty = 1.f / window_total(wy);
  Window wx{};
  float inv_tx = 0.f;
  if (content) {
    wx = window(j, k.crop_w, k.pw);
    inv_tx = 1.f / window_total(wx);
  }
  const int sx0 = window(j0, k.crop_w, k.pw).lo, sx1 = window(j1 - 1, k.crop_w, k.pw).hi;
  const uint8_t* src = k.src + n * k.stride_n;
  const uint8_t* msk = k.mask ? k.mask + n * k.mstride_n : nullptr;
  float acc[3] = {0.f, 0.f, 0.f}, kept = 0.f;

  for (int s0 = sx0; s0 < sx1; s0 += kSegCols) {
    const int s1 = min(s0 + kSegCols, sx1);
    vertical(k, wy, inv_ty, src, msk, s0, s1, sm);
    __syncthreads();
    // Horizontal pass: this thread's taps that fall inside the segment.
    if (content) {
      const int a = max(wx.lo, s0), b = min(wx.hi, s1);
      for (int x = a; x < b; ++x) {
        const float w = tap(wx, x - wx.lo) * inv_tx;
#pragma unroll
        for (int p = 0; p < 3; ++p)
          if (p < k.planes) acc[p] += w * sm[p][x - s0];
        kept += w * sm[3][x - s0];
      }
    }
    __syncthreads();
  }
  if (!content) return;
  if (k.planes == 1) acc[1] = acc[2] = acc[0];
  const float lost = 1.f - kept;  // weight of masked pixels, which take the fill value
  for (int c = 0; c < 3; ++c)
    put(k, o + c * plane, (acc[c] + lost * k.fill[c]) * k.scale[c] + k.bias[c]);
}

void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();
  throw usclip::DeviceFailure(std::string(what) + " failed: " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ")");
}

// Copies the crop of host frames (or of a host mask) into a packed device staging buffer.
uint8_t* stage(const uint8_t* crop0, int64_t stride_n, int64_t stride_h, int64_t frames,
               size_t row_bytes, int64_t rows, void* stream) {
  if (stride_h < static_cast<int64_t>(row_bytes))
    throw std::invalid_argument("frames: host input for CUDA needs positive, non-overlapping "
                                "row strides (pass a contiguous array)");
  const size_t frame_bytes = row_bytes * rows;
  auto* dst = static_cast<uint8_t*>(device_malloc_async(frame_bytes * frames, stream));
  try {
    for (int64_t n = 0; n < frames; ++n)
      memcpy_htod_2d(dst + n * frame_bytes, row_bytes, crop0 + n * stride_n, stride_h, row_bytes,
                     rows, stream);
  } catch (...) {
    device_free_async(dst, stream);
    throw;
  }
  return dst;
}

}  // namespace

void run_cuda(const Frames& f, bool frames_on_device, const Mask& m, bool mask_on_device,
              const Params& p, void* out, void* stream) {
  validate(f, p);
  if (f.n == 0) return;
  if (!out) throw std::invalid_argument("out: null device pointer");
  if (p.out_h > 65535) throw std::invalid_argument("size: output height above 65535");
  const int cw = p.roi_x1 - p.roi_x0, ch = p.roi_y1 - p.roi_y0;
  KParams k{};
  k.c = static_cast<int>(f.c);
  k.planes = f.c == 1 ? 1 : 3;
  for (int q = 0; q < 3; ++q) {
    k.ch[q] = p.channel[q];
    k.fill[q] = p.fill[q];
    k.scale[q] = p.scale[q];
    k.bias[q] = p.bias[q];
    k.pad[q] = p.fill[q] * p.scale[q] + p.bias[q];
  }
  k.crop_w = cw;
  k.crop_h = ch;
  k.out_h = p.out_h;
  k.out_w = p.out_w;
  k.px = p.place_x;
  k.py = p.place_y;
  k.pw = p.place_w;
  k.ph = p.place_h;
  k.out = out;
  k.fp16 = p.fp16;
  k.tile_w = std::min(kThreads, p.out_w);

  const uint8_t* crop = f.data + p.roi_y0 * f.stride_h + static_cast<int64_t>(p.roi_x0) * f.c;
  uint8_t* staged = nullptr;
  uint8_t* staged_mask = nullptr;
  k.src = crop;
  k.stride_n = f.stride_n;
  k.stride_h = f.stride_h;
  if (!frames_on_device) {
    staged = stage(crop, f.stride_n, f.stride_h, f.n, static_cast<size_t>(cw) * f.c, ch, stream);
    k.src = staged;
    k.stride_h = static_cast<int64_t>(cw) * f.c;
    k.stride_n = k.stride_h * ch;
  }
  k.mask = nullptr;
  if (m.data) {
    const uint8_t* mcrop = m.data + p.roi_y0 * m.stride_h + p.roi_x0;
    k.mask = mcrop;
    k.mstride_n = m.stride_n;
    k.mstride_h = m.stride_h;
    if (!mask_on_device) {
      const int64_t masks = m.stride_n == 0 ? 1 : f.n;
      try {
        staged_mask = stage(mcrop, m.stride_n, m.stride_h, masks, cw, ch, stream);
      } catch (...) {
        device_free_async(staged, stream);
        throw;
      }
      k.mask = staged_mask;
      k.mstride_h = cw;
      k.mstride_n = m.stride_n == 0 ? 0 : static_cast<int64_t>(cw) * ch;
    }
  }
  const dim3 block(kThreads);
  const unsigned tiles = static_cast<unsigned>((p.out_w + k.tile_w - 1) / k.tile_w);
  cudaError_t err = cudaSuccess;
  for (int64_t n0 = 0; n0 < f.n && err == cudaSuccess; n0 += 65535) {
    k.n0 = static_cast<int>(n0);
    const dim3 grid(tiles, static_cast<unsigned>(p.out_h),
                    static_cast<unsigned>(std::min<int64_t>(65535, f.n - n0)));
    preprocess_kernel<<<grid, block, 0, static_cast<cudaStream_t>(stream)>>>(k);
    err = cudaGetLastError();
  }
  device_free_async(staged, stream);
  device_free_async(staged_mask, stream);
  check(err, "preprocess kernel launch");
}

}  // namespace usclip::preprocess
