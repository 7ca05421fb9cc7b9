// CUDA similarity. Two paths, both ending in the same per-row block epilogue (softmax per
// group, group argmax, top-k over all K):
//  * small N (<= 32, D <= 3008): ONE launch. Grid (class chunks, row groups);
//    each block scores kRows image rows (kept in shared memory) against a chunk of classes,
//    computing class norms in the same pass; the last block to finish a row group (atomic
//    ticket after a __threadfence) runs the epilogue for those rows.
//  * large N: norms kernel, 64x64 tiled GEMM writing finished logits, epilogue kernel
//    (N up to 65535 * 64 rows: the GEMM grid's y dimension).
// Bad inputs raise flags (first bad row wins) that the host turns into InputError after the
// stream synchronises, so a NaN never comes back as a silently wrong answer.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "ops/similarity/similarity.h"

namespace usclip::similarity {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kRows = 4;                       // image rows per fused block
constexpr int kChunk = kWarps * 2;             // classes per fused block (2 per warp)
constexpr int kFusedMaxN = 32;
// The image rows (dynamic) plus ~200 B of static shared memory must fit the 48 KB a kernel
// gets without opting in.
constexpr int kFusedMaxD = 47 * 1024 / (kRows * 4);
constexpr int kInlineGroups = 64;
constexpr int kTile = 64, kTileD = 16;

// Flags: each holds INT_MAX - (first bad row), 0 = none (so one memset clears them).
enum Flag { kImageBad, kClassBad, kImageZero, kClassZero, kImageRange, kClassRange, kLogitBad,
            kFlags };

struct Args {
  const void* x;
  const void* c;
  int64_t xs, cs;  // row strides in elements
  int64_t n, k;
  int d;
  float scale, bias;
  int normalize, topk, groups, has_groups;
  int goff[kInlineGroups + 1];  // group offsets when groups <= kInlineGroups
  const int64_t* goff_dev;      // otherwise
  float *logits, *probs, *tv, *gprob, *gstat, *xinv, *cinv;
  int64_t *ti, *garg;
  int* flags;
  unsigned* tickets;
};

__host__ __device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ float ld(const float* p) { return __ldg(p); }
__device__ __forceinline__ float ld(const unsigned short* p) {
  return __half2float(__ushort_as_half(__ldg(p)));
}
__device__ __forceinline__ int64_t goff(const Args& a, int g) {
  return a.groups <= kInlineGroups ? a.goff[g] : a.goff_dev[g];
}
__device__ __forceinline__ void raise_flag(const Args& a, int f, int64_t row) {
  atomicMax(a.flags + f, INT_MAX - static_cast<int>(row < INT_MAX - 1 ? row : INT_MAX - 1));
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// (value, index) order: larger value first, then lower index.
__device__ __forceinline__ bool better(float v, int64_t i, float bv, int64_t bi) {
  return v > bv || (v == bv && i < bi);
}
__device__ __forceinline__ void warp_best(float& v, int64_t& i) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) { v = ov; i = oi; }
  }
}

// Norm bookkeeping shared by both paths: flags and the factor the logits use.
__device__ float inv_norm(const Args& a, float sq, bool bad, int64_t row, bool image) {
  if (bad) { raise_flag(a, image ? kImageBad : kClassBad, row); return 0.0f; }
  if (!a.normalize) return 1.0f;
  if (sq == 0.0f) { raise_flag(a, image ? kImageZero : kClassZero, row); return 0.0f; }
  if (!(sq >= 1e-30f && sq <= 1e30f)) raise_flag(a, image ? kImageRange : kClassRange, row);
  return rsqrtf(sq);
}

// The same factor without flags (blocks that are not the first to see a row).
__device__ __forceinline__ float inv_norm_quiet(const Args& a, float sq) {
  return !a.normalize ? 1.0f : (sq > 0.0f ? rsqrtf(sq) : 0.0f);
}

__device__ __forceinline__ float finish_logit(const Args& a, float dot, float xi, float ci,
                                              int64_t row) {
  const float v = a.scale * dot * xi * ci + a.bias;
  if (!isfinite(v)) raise_flag(a, kLogitBad, row);
  return v;
}

// ---- epilogue: one block per row ----------------------------------------------------------
__device__ void row_epilogue(const Args& a, int64_t n) {
  __shared__ float s_v[kWarps];
  __shared__ int64_t s_i[kWarps];
  __shared__ float s_m, s_z;
  const float* l = a.logits + n * a.k;
  float* p = a.probs + n * a.k;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int g = warp; g < a.groups; g += kWarps) {  // a warp per group
    const int64_t o = goff(a, g), e = goff(a, g + 1);
    float m = -INFINITY;
    int64_t am = LLONG_MAX;
    for (int64_t j = o + lane; j < e; j += 32) {
      const float v = __ldcg(l + j);
      if (v > m) { m = v; am = j; }
    }
    warp_best(m, am);
    float s = 0.0f;
    for (int64_t j = o + lane; j < e; j += 32) {
      const float ex = __expf(__ldcg(l + j) - m);
      p[j] = ex;
      s += ex;
    }
    s = warp_sum(s);
    const float inv = 1.0f / s;
    for (int64_t j = o + lane; j < e; j += 32) p[j] *= inv;
    if (lane == 0) {
      if (a.has_groups) {
        a.garg[n * a.groups + g] = am;
        a.gprob[n * a.groups + g] = inv;
      }
      a.gstat[(n * a.groups + g) * 2] = m;
      a.gstat[(n * a.groups + g) * 2 + 1] = s;
    }
  }
  __syncthreads();
  if (a.topk == 0) return;
  if (threadIdx.x == 0) {  // all-K softmax normaliser from the group maxima and sums
    const float* st = a.gstat + n * a.groups * 2;
    float m = -INFINITY, z = 0.0f;
    for (int g = 0; g < a.groups; ++g) m = fmaxf(m, st[2 * g]);
    for (int g = 0; g < a.groups; ++g) z += __expf(st[2 * g] - m) * st[2 * g + 1];
    s_m = m;
    s_z = z;
  }
  int64_t* ti = a.ti + n * a.topk;
  float* tv = a.tv + n * a.topk;
  if (a.topk <= 64) {
    // k rounds of a block argmax, each over the elements after the previous pick.
    float pv = INFINITY;
    int64_t pi = -1;
    for (int t = 0; t < a.topk; ++t) {
      float bv = -INFINITY;
      int64_t bi = LLONG_MAX;
      for (int64_t j = threadIdx.x; j < a.k; j += kThreads) {
        const float v = __ldcg(l + j);
        if ((v < pv || (v == pv && j > pi)) && better(v, j, bv, bi)) { bv = v; bi = j; }
      }
      warp_best(bv, bi);
      if (lane == 0) { s_v[warp] = bv; s_i[warp] = bi; }
      __syncthreads();
      bv = s_v[0];
      bi = s_i[0];
      for (int w = 1; w < kWarps; ++w) {
        if (better(s_v[w], s_i[w], bv, bi)) { bv = s_v[w]; bi = s_i[w]; }
      }
      if (threadIdx.x == 0) {
        ti[t] = bi;
        tv[t] = __expf(bv - s_m) / s_z;
      }
      pv = bv;
      pi = bi;
      __syncthreads();
    }
  } else {
    // Large k: each element's rank is the number of elements before it in the order.
    __syncthreads();
    for (int64_t j = threadIdx.x; j < a.k; j += kThreads) {
      const float v = __ldcg(l + j);
      int64_t rank = 0;
      for (int64_t i = 0; i < a.k && rank < a.topk; ++i) rank += better(__ldcg(l + i), i, v, j);
      if (rank < a.topk) {
        ti[rank] = j;
        tv[rank] = __expf(v - s_m) / s_z;
      }
    }
  }
  __syncthreads();  // the next row reuses the shared scratch
}

// ---- small N: one launch ------------------------------------------------------------------
template <typename TX, typename TC>
__global__ void __launch_bounds__(kThreads) fused_kernel(Args a) {
  extern __shared__ float xs[];  // kRows x d
  __shared__ float s_xinv[kRows];
  __shared__ int s_bad[kRows];
  __shared__ bool s_last;
  const int64_t r0 = int64_t(blockIdx.y) * kRows;
  const int rows = static_cast<int>(imin(kRows, a.n - r0));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, d = a.d;
  if (threadIdx.x < kRows) s_bad[threadIdx.x] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < kRows * d; i += kThreads) {
    const int r = i / d, col = i - r * d;
    float v = 0.0f;
    if (r < rows) {
      v = ld(static_cast<const TX*>(a.x) + (r0 + r) * a.xs + col);
      if (!isfinite(v)) s_bad[r] = 1;
    }
    xs[i] = v;
  }
  __syncthreads();
  if (warp < rows) {
    float sq = 0.0f;
    for (int i = lane; i < d; i += 32) sq += xs[warp * d + i] * xs[warp * d + i];
    sq = warp_sum(sq);
    if (lane == 0) {
      // Every chunk block computes the same value; only the first one raises flags.
      const float inv = blockIdx.x == 0 ? inv_norm(a, sq, s_bad[warp], r0 + warp, true)
                                        : inv_norm_quiet(a, sq);
      s_xinv[warp] = inv;
    }
  }
  __syncthreads();
  const int64_t j0 = int64_t(blockIdx.x) * kChunk + warp * 2;
  const TC* c0 = static_cast<const TC*>(a.c) + imin(j0, a.k - 1) * a.cs;
  const TC* c1 = static_cast<const TC*>(a.c) + imin(j0 + 1, a.k - 1) * a.cs;
  float acc0[kRows] = {}, acc1[kRows] = {}, sq0 = 0.0f, sq1 = 0.0f;
  bool bad0 = false, bad1 = false;
  if (j0 < a.k) {
#pragma unroll 4
    for (int i = lane; i < d; i += 32) {
      const float v0 = ld(c0 + i), v1 = ld(c1 + i);
      bad0 |= !isfinite(v0);
      bad1 |= !isfinite(v1);
      sq0 += v0 * v0;
      sq1 += v1 * v1;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        acc0[r] += xs[r * d + i] * v0;
        acc1[r] += xs[r * d + i] * v1;
      }
    }
  }
  sq0 = warp_sum(sq0);
  sq1 = warp_sum(sq1);
  bad0 = __any_sync(0xffffffffu, bad0);
  bad1 = __any_sync(0xffffffffu, bad1);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    acc0[r] = warp_sum(acc0[r]);
    acc1[r] = warp_sum(acc1[r]);
  }
  if (lane == 0 && j0 < a.k) {
    const bool flag_rows = blockIdx.y == 0;
    for (int q = 0; q < 2 && j0 + q < a.k; ++q) {
      const float sq = q ? sq1 : sq0;
      const float ci = flag_rows ? inv_norm(a, sq, q ? bad1 : bad0, j0 + q, false)
                                 : inv_norm_quiet(a, sq);
      for (int r = 0; r < rows; ++r) {
        a.logits[(r0 + r) * a.k + j0 + q] =
            finish_logit(a, q ? acc1[r] : acc0[r], s_xinv[r], ci, r0 + r);
      }
    }
  }
  __threadfence();  // publish this block's logits before taking a ticket
  __syncthreads();
  if (threadIdx.x == 0) s_last = atomicAdd(a.tickets + blockIdx.y, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  for (int r = 0; r < rows; ++r) row_epilogue(a, r0 + r);
  if (threadIdx.x == 0) a.tickets[blockIdx.y] = 0;  // ready for the next call
}

// ---- large N: norms, tiled GEMM, epilogue -------------------------------------------------
template <typename T>
__device__ void norm_row(const Args& a, const T* row, int64_t r, bool image) {
  const int lane = threadIdx.x & 31;
  float sq = 0.0f;
  bool bad = false;
  for (int i = lane; i < a.d; i += 32) {
    const float v = ld(row + i);
    bad |= !isfinite(v);
    sq += v * v;
  }
  sq = warp_sum(sq);
  bad = __any_sync(0xffffffffu, bad);
  if (lane == 0) (image ? a.xinv : a.cinv)[r] = inv_norm(a, sq, bad, r, image);
}

template <typename TX, typename TC>
__global__ void __launch_bounds__(kThreads) norms_kernel(Args a) {
  const int64_t w = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (w < a.n) norm_row(a, static_cast<const TX*>(a.x) + w * a.xs, w, true);
  else if (w < a.n + a.k) norm_row(a, static_cast<const TC*>(a.c) + (w - a.n) * a.cs, w - a.n, false);
}

template <typename TX, typename TC>
__global__ void __launch_bounds__(kThreads) gemm_kernel(Args a) {
  __shared__ __align__(16) float as[kTileD][kTile + 4];
  __shared__ __align__(16) float bs[kTileD][kTile + 4];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t row0 = int64_t(blockIdx.y) * kTile, col0 = int64_t(blockIdx.x) * kTile;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < a.d; k0 += kTileD) {
    for (int t = 0; t < kTile * kTileD / kThreads; ++t) {
      const int idx = threadIdx.x + t * kThreads, r = idx / kTileD, q = idx % kTileD;
      const bool in_d = k0 + q < a.d;
      as[q][r] = (row0 + r < a.n && in_d)
                     ? ld(static_cast<const TX*>(a.x) + (row0 + r) * a.xs + k0 + q) : 0.0f;
      bs[q][r] = (col0 + r < a.k && in_d)
                     ? ld(static_cast<const TC*>(a.c) + (col0 + r) * a.cs + k0 + q) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < kTileD; ++q) {
      const float4 av = *reinterpret_cast<const float4*>(&as[q][ty * 4]);
      const float4 bv = *reinterpret_cast<const float4*>(&bs[q][tx * 4]);
      const float ar[4] = {av.x, av.y, av.z, av.w}, br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += ar[i] * br[j];
      }
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) {
    const int64_t r = row0 + ty * 4 + i;
    if (r >= a.n) continue;
    for (int j = 0; j < 4; ++j) {
      const int64_t col = col0 + tx * 4 + j;
      if (col < a.k) a.logits[r * a.k + col] = finish_logit(a, acc[i][j], a.xinv[r], a.cinv[col], r);
    }
  }
}

__global__ void __launch_bounds__(kThreads) epilogue_kernel(Args a) {
  row_epilogue(a, blockIdx.x);
}

// ---- host ---------------------------------------------------------------------------------
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so later calls start clean
    throw DeviceFailure(std::string("CUDA ") + what + " failed: " + cudaGetErrorName(e) + " (" +
                        cudaGetErrorString(e) + ")");
  }
}

// Grow-only buffers per device, reused across calls (cudaMalloc costs far more than a small
// call); the mutex is held for a whole call, which ends in a stream synchronise. Never freed:
// releasing them from static destructors races the driver's own shutdown.
struct Workspace {
  std::mutex mu;
  char* dev = nullptr;
  size_t dev_size = 0;
  char* host = nullptr;  // pinned, for the one device-to-host copy of all outputs
  size_t host_size = 0;
};

Workspace& workspace(int device) {
  static std::mutex map_mu;
  static auto* spaces = new std::map<int, Workspace*>();
  std::lock_guard<std::mutex> lk(map_mu);
  Workspace*& w = (*spaces)[device];
  if (!w) w = new Workspace();
  return *w;
}

void reserve(Workspace& w, size_t dev_bytes, size_t host_bytes) {
  if (dev_bytes > w.dev_size) {
    if (w.dev) cudaFree(w.dev);
    w.dev = nullptr;
    w.dev_size = 0;
    check(cudaMalloc(&w.dev, dev_bytes), "cudaMalloc (similarity workspace)");
    w.dev_size = dev_bytes;
  }
  if (host_bytes > w.host_size) {
    if (w.host) cudaFreeHost(w.host);
    w.host = nullptr;
    w.host_size = 0;
    check(cudaMallocHost(&w.host, host_bytes), "cudaMallocHost (similarity staging)");
    w.host_size = host_bytes;
  }
}

// Byte layout of the workspace: what is copied back to the host comes first, in one block.
struct Layout {
  size_t flags, tickets, logits, probs, tv, ti, garg, gprob, host_end, gstat, xinv, cinv, x, c,
      goff, end;
};

size_t align_up(size_t v) { return (v + 255) / 256 * 256; }

Layout layout(int64_t n, int64_t k, int64_t topk, int64_t g, size_t xbytes,
              size_t cbytes) {
  Layout L{};
  size_t o = 0;
  auto take = [&](size_t bytes) { const size_t at = o; o = align_up(o + bytes); return at; };
  L.flags = take(kFlags * sizeof(int));
  L.tickets = take(((n + kRows - 1) / kRows) * 4);  // cleared with the flags: keep adjacent
  L.logits = take(n * k * 4);
  L.probs = take(n * k * 4);
  L.tv = take(n * topk * 4);
  L.ti = take(n * topk * 8);
  L.garg = take(n * g * 8);
  L.gprob = take(n * g * 4);
  L.host_end = o;
  L.gstat = take(n * std::max<int64_t>(g, 1) * 8);
  L.xinv = take(n * 4);
  L.cinv = take(k * 4);
  L.x = take(xbytes);
  L.c = take(cbytes);
  L.goff = take((g + 2) * 8);
  L.end = o;
  return L;
}

void raise_input_error(const int* flags) {
  static const char* what[kFlags] = {
      "image_emb row %ld contains NaN or infinite values; embeddings must be finite",
      "class_emb row %ld contains NaN or infinite values; embeddings must be finite",
      "image_emb row %ld has zero L2 norm and cannot be normalised (normalize=True)",
      "class_emb row %ld has zero L2 norm and cannot be normalised (normalize=True)",
      "image_emb row %ld has an L2 norm outside float32's safe range (1e-15..1e15) on CUDA; "
      "rescale it",
      "class_emb row %ld has an L2 norm outside float32's safe range (1e-15..1e15) on CUDA; "
      "rescale it",
      "logits of image_emb row %ld overflow float32 (embedding magnitudes or scale too large)"};
  for (int f = 0; f < kFlags; ++f) {
    if (flags[f] != 0) {
      char buf[256];
      std::snprintf(buf, sizeof buf, what[f], static_cast<long>(INT_MAX - flags[f]));
      throw InputError(buf);
    }
  }
}

template <typename TX, typename TC>
void launch(const Args& a, bool fused, cudaStream_t st) {
  if (fused) {
    const dim3 grid(static_cast<unsigned>((a.k + kChunk - 1) / kChunk),
                    static_cast<unsigned>((a.n + kRows - 1) / kRows));
    fused_kernel<TX, TC><<<grid, kThreads, kRows * a.d * sizeof(float), st>>>(a);
    return;
  }
  const int64_t rows = a.n + a.k;
  norms_kernel<TX, TC><<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kThreads, 0, st>>>(a);
  const dim3 grid(static_cast<unsigned>((a.k + kTile - 1) / kTile),
                  static_cast<unsigned>((a.n + kTile - 1) / kTile));
  gemm_kernel<TX, TC><<<grid, kThreads, 0, st>>>(a);
  epilogue_kernel<<<static_cast<unsigned>(a.n), kThreads, 0, st>>>(a);
}

void dispatch(const Args& a, DType xt, DType ct, bool fused, cudaStream_t st) {
  using H = unsigned short;
  if (xt == DType::kF32 && ct == DType::kF32) launch<float, float>(a, fused, st);
  else if (xt == DType::kF32) launch<float, H>(a, fused, st);
  else if (ct == DType::kF32) launch<H, float>(a, fused, st);
  else launch<H, H>(a, fused, st);
}

// Restores the caller's current device when a call names another one.
struct DeviceGuard {
  int prev = -1;
  explicit DeviceGuard(int want) {
    check(cudaGetDevice(&prev), "cudaGetDevice");
    if (want >= 0 && want != prev) check(cudaSetDevice(want), "cudaSetDevice");
    else prev = -1;
  }
  ~DeviceGuard() {
    if (prev >= 0) cudaSetDevice(prev);
  }
};

Args make_args(const Matrix& image, const Matrix& classes, const Options& opt, const CudaCall& call,
               const Outputs& out, char* base, const Layout& L) {
  Args a{};
  a.x = call.image_on_device ? image.data : base + L.x;
  a.xs = call.image_on_device ? image.row_stride : image.cols;
  a.c = call.classes_on_device ? classes.data : base + L.c;
  a.cs = call.classes_on_device ? classes.row_stride : classes.cols;
  a.n = image.rows;
  a.k = classes.rows;
  a.d = static_cast<int>(image.cols);
  a.scale = opt.scale;
  a.bias = opt.bias;
  a.normalize = opt.normalize;
  a.topk = static_cast<int>(opt.topk);
  a.has_groups = opt.groups > 0;
  a.groups = opt.groups > 0 ? static_cast<int>(opt.groups) : 1;
  if (a.groups <= kInlineGroups) {
    for (int g = 0; g <= a.groups; ++g) {
      a.goff[g] = opt.groups > 0 ? static_cast<int>(opt.group_offsets[g]) : (g ? int(a.k) : 0);
    }
  }
  a.goff_dev = reinterpret_cast<const int64_t*>(base + L.goff);
  const bool dev_out = call.outputs_on_device;
  a.logits = dev_out ? out.logits : reinterpret_cast<float*>(base + L.logits);
  a.probs = dev_out ? out.probs : reinterpret_cast<float*>(base + L.probs);
  a.tv = dev_out ? out.topk_values : reinterpret_cast<float*>(base + L.tv);
  a.ti = dev_out ? out.topk_indices : reinterpret_cast<int64_t*>(base + L.ti);
  a.garg = dev_out ? out.group_argmax : reinterpret_cast<int64_t*>(base + L.garg);
  a.gprob = dev_out ? out.group_probs : reinterpret_cast<float*>(base + L.gprob);
  a.gstat = reinterpret_cast<float*>(base + L.gstat);
  a.xinv = reinterpret_cast<float*>(base + L.xinv);
  a.cinv = reinterpret_cast<float*>(base + L.cinv);
  a.flags = reinterpret_cast<int*>(base + L.flags);
  a.tickets = reinterpret_cast<unsigned*>(base + L.tickets);
  return a;
}

void copy_out(const char* host, const Layout& L, const Options& opt, int64_t n, int64_t k,
              const Outputs& out) {
  std::memcpy(out.logits, host + L.logits, n * k * 4);
  std::memcpy(out.probs, host + L.probs, n * k * 4);
  std::memcpy(out.topk_values, host + L.tv, n * opt.topk * 4);
  std::memcpy(out.topk_indices, host + L.ti, n * opt.topk * 8);
  if (opt.groups > 0) {
    std::memcpy(out.group_argmax, host + L.garg, n * opt.groups * 8);
    std::memcpy(out.group_probs, host + L.gprob, n * opt.groups * 4);
  }
}

}  // namespace

void similarity_cuda(const Matrix& image, const Matrix& classes, const Options& opt,
                     const Outputs& out, const CudaCall& call) {
  const int64_t n = image.rows, k = classes.rows, d = image.cols;
  if (n == 0) return;
  if (k > INT_MAX || d > INT_MAX || n > INT_MAX) throw std::invalid_argument("similarity: sizes exceed 2^31 on CUDA");
  const size_t xe = image.dtype == DType::kF16 ? 2 : 4, ce = classes.dtype == DType::kF16 ? 2 : 4;
  if ((!call.image_on_device && image.row_stride != d) ||
      (!call.classes_on_device && classes.row_stride != d)) {
    throw std::invalid_argument("host inputs to the CUDA similarity must be C-contiguous");
  }
  DeviceGuard guard(call.device);
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  Workspace& w = workspace(dev);
  std::lock_guard<std::mutex> lk(w.mu);
  const int64_t g = opt.groups;
  const Layout L = layout(n, k, opt.topk, g, call.image_on_device ? 0 : n * d * xe,
                          call.classes_on_device ? 0 : k * d * ce);
  reserve(w, L.end, call.outputs_on_device ? 256 : L.host_end);
  auto st = static_cast<cudaStream_t>(call.stream);
  const Args a = make_args(image, classes, opt, call, out, w.dev, L);
  if (!call.image_on_device) {
    check(cudaMemcpyAsync(w.dev + L.x, image.data, n * d * xe, cudaMemcpyHostToDevice, st),
          "copy of image_emb to the device");
  }
  if (!call.classes_on_device) {
    check(cudaMemcpyAsync(w.dev + L.c, classes.data, k * d * ce, cudaMemcpyHostToDevice, st),
          "copy of class_emb to the device");
  }
  if (g > kInlineGroups) {
    check(cudaMemcpyAsync(w.dev + L.goff, opt.group_offsets, (g + 1) * 8, cudaMemcpyHostToDevice,
                          st), "copy of group offsets");
  }
  check(cudaMemsetAsync(w.dev + L.flags, 0, L.logits - L.flags, st), "cudaMemsetAsync");
  const bool fused = n <= kFusedMaxN && d <= kFusedMaxD;
  dispatch(a, image.dtype, classes.dtype, fused, st);
  check(cudaGetLastError(), "similarity kernel launch");
  const size_t back = call.outputs_on_device ? kFlags * sizeof(int) : L.host_end;
  check(cudaMemcpyAsync(w.host, w.dev, back, cudaMemcpyDeviceToHost, st), "copy of results");
  check(cudaStreamSynchronize(st), "similarity kernels");
  raise_input_error(reinterpret_cast<const int*>(w.host + L.flags));
  if (!call.outputs_on_device) copy_out(w.host, L, opt, n, k, out);
}

}  // namespace usclip::similarity
