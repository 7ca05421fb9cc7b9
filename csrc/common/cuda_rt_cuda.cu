#include "common/errors.h"
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/cuda_rt.h"

namespace usclip::rt {
namespace {

void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();
  throw usclip::DeviceFailure(std::string(what) + " failed: " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ")");
}

cudaStream_t S(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace

void* stream_create() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return s;
}

void stream_destroy(void* stream) noexcept {
  if (stream) cudaStreamDestroy(S(stream));
}

void stream_sync(void* stream) { check(cudaStreamSynchronize(S(stream)), "cudaStreamSynchronize"); }

void* host_alloc_pinned(size_t bytes) {
  void* p = nullptr;
  check(cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault), "cudaHostAlloc");
  return p;
}

void host_free_pinned(void* p) noexcept {
  if (p) cudaFreeHost(p);
}

void memcpy_async(void* dst, const void* src, size_t bytes, int kind, void* stream) {
  if (kind < 0 || kind > 4) throw std::invalid_argument("memcpy kind must be 0..4 (cudaMemcpyKind)");
  check(cudaMemcpyAsync(dst, src, bytes, static_cast<cudaMemcpyKind>(kind), S(stream)),
        "cudaMemcpyAsync");
}

void* graph_begin_capture(void* stream) {
  // Thread-local mode: other threads' unrelated CUDA calls do not invalidate the capture.
  check(cudaStreamBeginCapture(S(stream), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  return nullptr;
}

void* graph_end_capture(void* stream) {
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(S(stream), &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check(err, "cudaGraphInstantiate");
  return exec;
}

void graph_launch(void* exec, void* stream) {
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), S(stream)), "cudaGraphLaunch");
}

void graph_destroy(void* exec) noexcept {
  if (exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

void set_device(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }

}  // namespace usclip::rt
