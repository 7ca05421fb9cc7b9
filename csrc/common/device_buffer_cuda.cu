#include "common/errors.h"
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/device_buffer.h"

namespace usclip {
namespace {

void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw usclip::DeviceFailure(std::string(what) + " failed: " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ")");
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

bool pools_supported() {
  int dev = 0, ok = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&ok, cudaDevAttrMemoryPoolsSupported, dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return ok != 0;
}

}  // namespace

void* device_malloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  return p;
}

void device_free(void* p) noexcept {
  if (p) cudaFree(p);
}

void* device_malloc_async(size_t bytes, void* stream) {
  void* p = nullptr;
  if (pools_supported())
    check(cudaMallocAsync(&p, bytes ? bytes : 1, as_stream(stream)), "cudaMallocAsync");
  else
    check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  return p;
}

void device_free_async(void* p, void* stream) noexcept {
  if (!p) return;
  if (pools_supported()) {
    cudaFreeAsync(p, as_stream(stream));
  } else {
    cudaStreamSynchronize(as_stream(stream));
    cudaFree(p);
  }
}

void memcpy_htod(void* dst, const void* src, size_t bytes, void* stream) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, as_stream(stream)),
        "cudaMemcpyAsync(host to device)");
  check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

void memcpy_dtoh(void* dst, const void* src, size_t bytes, void* stream) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)),
        "cudaMemcpyAsync(device to host)");
  check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

void memcpy_htod_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                    size_t height, void* stream) {
  check(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, cudaMemcpyHostToDevice,
                          as_stream(stream)),
        "cudaMemcpy2DAsync(host to device)");
}

void stream_synchronize(void* stream) {
  check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

int current_device() {
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  return dev;
}

int pointer_device(const void* p) {
  cudaPointerAttributes attr{};
  cudaError_t err = cudaPointerGetAttributes(&attr, p);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return -1;  // unregistered host memory on old runtimes
  }
  return (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) ? attr.device
                                                                                   : -1;
}

}  // namespace usclip
