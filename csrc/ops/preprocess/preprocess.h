// Fused ultrasound frame preprocessing: crop + mask + antialiased bilinear resize (stretch or
// letterbox) + per-channel normalisation + NCHW layout, uint8 in, float32/float16 out.
// Plain C++ (no Python, no CUDA headers): the CPU kernel is in preprocess_cpu.cpp, the CUDA
// kernel in preprocess_cuda.cu; both implement exactly the numpy reference
// (python/usclip_sdk/ops/preprocess_reference.py).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace usclip::preprocess {

// uint8 frames N x H x W x C. Strides are in bytes and may be negative for N and H; pixels
// inside a row must be contiguous (stride_w == c, channel stride 1): the Python face turns
// any other layout into that one first.
struct Frames {
  const uint8_t* data = nullptr;  // address of element [0, 0, 0, 0]
  int64_t n = 0, h = 0, w = 0, c = 0;
  int64_t stride_n = 0, stride_h = 0;
};

// Optional uint8 mask, H x W (stride_n == 0: one mask for every frame) or N x H x W.
// Nonzero keeps the pixel; zero replaces it by the fill value. Rows must be contiguous.
struct Mask {
  const uint8_t* data = nullptr;  // nullptr: no mask
  int64_t stride_n = 0, stride_h = 0;
};

struct Params {
  int roi_x0 = 0, roi_y0 = 0, roi_x1 = 0, roi_y1 = 0;  // half-open crop, inside the frame
  int out_h = 0, out_w = 0;                            // output size
  int place_x = 0, place_y = 0, place_w = 0, place_h = 0;  // resized content inside the output
  int channel[3] = {0, 1, 2};  // source channel of output R, G, B (gray: 0, 0, 0)
  float fill[3] = {0, 0, 0};   // value (0..255 scale) of masked source pixels, per output channel
  float scale[3] = {1, 1, 1};  // out = value * scale + bias (value on the 0..255 scale)
  float bias[3] = {0, 0, 0};
  bool fp16 = false;           // output float16 (else float32)
};

// Throws std::invalid_argument naming the field when the call is inconsistent.
inline void validate(const Frames& f, const Params& p) {
  auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  if (!f.data && f.n > 0) bad("frames: null data pointer");
  if (f.n < 0 || f.h < 1 || f.w < 1 || !(f.c == 1 || f.c == 3 || f.c == 4))
    bad("frames: expected N >= 0, H, W >= 1 and C in {1, 3, 4}");
  if (!(0 <= p.roi_x0 && p.roi_x0 < p.roi_x1 && p.roi_x1 <= f.w && 0 <= p.roi_y0 &&
        p.roi_y0 < p.roi_y1 && p.roi_y1 <= f.h))
    bad("roi: outside the frame or empty");
  if (p.out_h < 1 || p.out_w < 1) bad("size: expected positive output height and width");
  if (p.place_w < 1 || p.place_h < 1 || p.place_x < 0 || p.place_y < 0 ||
      p.place_x + p.place_w > p.out_w || p.place_y + p.place_h > p.out_h)
    bad("placement: the resized content must lie inside the output");
  for (int k = 0; k < 3; ++k)
    if (p.channel[k] < 0 || p.channel[k] >= f.c) bad("channel: source channel out of range");
}

// PIL's antialiased bilinear window for output index i: input pixels [lo, hi) with weights
// max(0, 1 - |x + 0.5 - centre| / max(scale, 1)), normalised to sum 1. Header-only so the
// CPU and CUDA kernels share one definition (callable from device code too).
#if defined(__CUDACC__)
#define USCLIP_HD __host__ __device__ __forceinline__
#else
#define USCLIP_HD inline
#endif

struct Window {
  int lo, hi;    // input range [lo, hi)
  float off;     // lo + 0.5 - centre (computed in double: centres reach thousands of pixels)
  float inv_fs;  // 1 / max(scale, 1)
};

USCLIP_HD Window window(int i, int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double fs = scale > 1.0 ? scale : 1.0;
  const double centre = (i + 0.5) * scale;
  int lo = static_cast<int>(floor(centre - fs + 0.5));
  int hi = static_cast<int>(floor(centre + fs + 0.5));
  lo = lo < 0 ? 0 : lo;
  hi = hi > in_size ? in_size : hi;
  return {lo, hi, static_cast<float>(lo + 0.5 - centre), static_cast<float>(1.0 / fs)};
}

// Unnormalised weight of input pixel lo + k.
USCLIP_HD float tap(const Window& win, int k) {
  const float d = fabsf((k + win.off) * win.inv_fs);
  return d < 1.f ? 1.f - d : 0.f;
}

// Largest window size over all outputs (a bound, used to size weight tables).
inline int max_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double fs = scale > 1.0 ? scale : 1.0;
  return static_cast<int>(std::ceil(2.0 * fs)) + 2;
}

// CPU kernel: writes N x 3 x out_h x out_w (contiguous) into `out`. Multithreaded with the
// shared pool; call without holding any Python lock.
void run_cpu(const Frames& f, const Mask& m, const Params& p, void* out);

// CUDA kernel (only in builds with CUDA). `frames_on_device` / `mask_on_device`: whether the
// pointers are device memory; host inputs are copied (the crop only) to a stream-ordered
// staging buffer. `out` is device memory of N x 3 x out_h x out_w elements. `stream` is a
// cudaStream_t (nullptr: legacy default stream). Returns after enqueueing; throws
// usclip::DeviceFailure (common/errors.h) with the CUDA error name on failure.
void run_cuda(const Frames& f, bool frames_on_device, const Mask& m, bool mask_on_device,
              const Params& p, void* out, void* stream);

}  // namespace usclip::preprocess
