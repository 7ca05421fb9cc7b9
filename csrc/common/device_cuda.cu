#include "common/device.h"

#include <cuda_runtime.h>

namespace usclip {

CudaStatus cuda_status() {
  CudaStatus s;
  cudaRuntimeGetVersion(&s.runtime_version);
  if (cudaDriverGetVersion(&s.driver_version) != cudaSuccess) s.driver_version = 0;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    s.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(err) + " (" +
               cudaGetErrorString(err) + ")";
    return s;
  }
  if (n == 0) {
    s.reason = "no CUDA device found";
    return s;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    s.devices.push_back({p.name, p.major, p.minor, p.totalGlobalMem});
  }
  s.usable = !s.devices.empty();
  if (!s.usable) s.reason = "cudaGetDeviceProperties failed for every device";
  return s;
}

}  // namespace usclip
