// Fused batched image-text similarity: plain C++ API (no Python, no CUDA headers).
//
// For image embeddings X (N x D) and class embeddings C (K x D):
//   logit[n][k] = scale * <x_n, c_k> / (|x_n| |c_k|) + bias      (normalize = true)
//   logit[n][k] = scale * <x_n, c_k> + bias                      (normalize = false)
//   probs       = softmax of each row (or within each group of consecutive classes)
//   top-k       = the k largest logits of each row over all K classes, descending, ties to the
//                 lower index; values are probabilities of the softmax over all K classes
//   groups      = per group: index (in 0..K) of the largest logit, ties to the lower index, and
//                 its within-group probability.
// Inputs are float32 or float16 (converted on load, accumulated in float32).
#pragma once
#include "common/errors.h"
#include <cstdint>
#include <stdexcept>
#include <string>

namespace usclip::similarity {

enum class DType : int { kF32 = 0, kF16 = 1 };

// A rows x cols matrix with unit column stride; rows may be any stride (negative, zero).
struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
  int64_t row_stride = 0;  // in elements
};

struct Options {
  float scale = 100.0f;
  float bias = 0.0f;
  bool normalize = true;
  int64_t topk = 5;                          // already clamped to [0, K] by the caller
  const int64_t* group_offsets = nullptr;    // groups + 1 ascending offsets, 0 .. K; or nullptr
  int64_t groups = 0;
  // Optional raw dot products <x_n, c_k> (N x K, row-major float32) computed elsewhere (a BLAS
  // product); the kernel then only reads the inputs for norms and finiteness checks.
  const float* dots = nullptr;
  // Optional per-class factors (K floats) of class rows prepared once (finite, checked by the
  // caller): class k's dot products are multiplied by class_scale[k] in place of 1/|c_k| (or 1),
  // and the class rows are neither normed nor checked per call (usclip_sdk ClassEmbeddings).
  const float* class_scale = nullptr;
};

// Caller-allocated, C-contiguous outputs. logits may alias dots.
struct Outputs {
  float* logits = nullptr;           // N x K
  float* probs = nullptr;            // N x K
  int64_t* topk_indices = nullptr;   // N x topk
  float* topk_values = nullptr;      // N x topk
  int64_t* group_argmax = nullptr;   // N x groups (when groups > 0)
  float* group_probs = nullptr;      // N x groups
};

// Bad input (non-finite value, zero-norm row, overflow): the message names the argument
// ("image_emb", "class_emb") and the row. Maps to Python ValueError.
struct InputError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A CUDA failure (no device, launch error, out of memory). Maps to usclip DeviceError.
using DeviceFailure = ::usclip::DeviceFailure;  // common/errors.h: the one device error

// Checks shapes/options (throws std::invalid_argument naming the argument).
void validate(const Matrix& image, const Matrix& classes, const Options& opt);

// CPU: multithreaded (usclip::parallel_for), SIMD where the CPU has it. Throws InputError.
void similarity_cpu(const Matrix& image, const Matrix& classes, const Options& opt,
                    const Outputs& out);

// Which CPU kernel variant runs here ("avx2+fma+f16c" or "generic").
const char* cpu_kernel_variant();

// ---- CUDA (similarity_cuda.cu; only when compiled with USCLIP_WITH_CUDA) ----
struct CudaCall {
  bool image_on_device = false;    // image.data is a device pointer
  bool classes_on_device = false;  // classes.data is a device pointer
  bool outputs_on_device = false;  // Outputs are device pointers (else host)
  void* stream = nullptr;          // cudaStream_t; nullptr = the legacy default stream
  int device = -1;                 // CUDA device ordinal; -1 = the current device
};

// Runs the fused CUDA kernels; synchronises the stream before returning (so a non-finite
// input is reported, never silently written). Throws InputError or DeviceFailure.
void similarity_cuda(const Matrix& image, const Matrix& classes, const Options& opt,
                     const Outputs& out, const CudaCall& call);

}  // namespace usclip::similarity
