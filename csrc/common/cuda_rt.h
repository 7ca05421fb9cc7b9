// Thin CUDA runtime calls for the TensorRT backend (streams, pinned host memory, CUDA graphs,
// async copies), callable from plain C++. Implemented in cuda_rt_cuda.cu (CUDA builds only).
// Handles are opaque pointers; every failure throws usclip::DeviceFailure naming the call.
#pragma once
#include <cstddef>

namespace usclip::rt {

void* stream_create();                      // non-blocking stream
void stream_destroy(void* stream) noexcept;
void stream_sync(void* stream);

void* host_alloc_pinned(size_t bytes);      // page-locked, for async D2H/H2D
void host_free_pinned(void* p) noexcept;

void memcpy_async(void* dst, const void* src, size_t bytes, int kind, void* stream);  // kind: cudaMemcpyKind

void* graph_begin_capture(void* stream);    // returns nullptr; capture mode: thread-local
void* graph_end_capture(void* stream);      // returns an instantiated cudaGraphExec_t
void graph_launch(void* exec, void* stream);
void graph_destroy(void* exec) noexcept;

void set_device(int device);

}  // namespace usclip::rt
