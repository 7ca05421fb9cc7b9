// Raw CUDA memory helpers callable from plain C++ (implemented in device_buffer_cuda.cu, only
// in CUDA builds). They own no state: the Python DeviceArray (usclip_sdk/ops/device.py) and
// the kernels' staging buffers hold the pointers. Every failure throws usclip::DeviceFailure
// naming the CUDA call and error, never aborts.
#pragma once
#include <cstddef>

namespace usclip {

void* device_malloc(size_t bytes);              // cudaMalloc on the current device
void device_free(void* p) noexcept;             // cudaFree (null is fine)

// Stream-ordered scratch (cudaMallocAsync where the device supports memory pools). free_async
// releases after the work queued on `stream` so far; without pools it synchronises first.
void* device_malloc_async(size_t bytes, void* stream);
void device_free_async(void* p, void* stream) noexcept;

void memcpy_htod(void* dst, const void* src, size_t bytes, void* stream);  // synchronous
void memcpy_dtoh(void* dst, const void* src, size_t bytes, void* stream);  // synchronous
void memcpy_htod_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                    size_t height, void* stream);                           // asynchronous
void stream_synchronize(void* stream);

int current_device();                    // cudaGetDevice
// Device ordinal owning a pointer, or -1 for host (pageable or pinned) memory.
int pointer_device(const void* p);

}  // namespace usclip
