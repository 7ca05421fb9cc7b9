// CUDA device status, callable from plain C++ (implemented in device_cuda.cu).
#pragma once
#include <string>
#include <vector>

namespace usclip {

struct CudaDeviceInfo {
  std::string name;
  int major = 0, minor = 0;
  size_t total_memory = 0;
};

struct CudaStatus {
  bool usable = false;        // a device can run our kernels
  int runtime_version = 0;    // cudaRuntimeGetVersion
  int driver_version = 0;     // 0 when no driver is installed
  std::string reason;         // why not usable ("" when usable)
  std::vector<CudaDeviceInfo> devices;
};

// Never throws and never aborts: no driver / no device become a reason string.
CudaStatus cuda_status();

}  // namespace usclip
