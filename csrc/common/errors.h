// The one native error convention. Plain C++ (the .cu files include it too, never pybind11):
// - std::invalid_argument: a caller's bad argument -> Python ValueError (pybind11's default);
// - usclip::DeviceFailure: anything the CUDA runtime or a missing CUDA build refuses ->
//   usclip_sdk.errors.DeviceError, by the one translator registered in bindings/main.cpp.
// Every CUDA failure in every op and in the rt_* calls the TensorRT backend uses throws it,
// so no Python face has to re-map RuntimeError, and none reaches a user as a bare traceback.
#pragma once
#include <stdexcept>
#include <string>

namespace usclip {

struct DeviceFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void no_cuda_build() {
  throw DeviceFailure("usclip was built without CUDA kernels (USCLIP_CUDA=OFF or no nvcc)");
}

}  // namespace usclip
