// Binding of the preprocessing kernels. Validation and array handling live in
// usclip_sdk/ops/preprocess.py; this layer only unpacks plain numbers and pointers (addresses
// of buffers the Python caller keeps alive for the call) and releases the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>

#include "bindings/registry.h"
#include "common/errors.h"
#include "ops/preprocess/preprocess.h"

namespace py = pybind11;
namespace pp = usclip::preprocess;

namespace {

using I7 = std::array<int64_t, 7>;
using I3 = std::array<int64_t, 3>;
using I4 = std::array<int, 4>;
using I2 = std::array<int, 2>;
using F3 = std::array<float, 3>;
using C3 = std::array<int, 3>;

struct Call {
  pp::Frames f;
  pp::Mask m;
  pp::Params p;
};

Call unpack(const I7& frames, const I3& mask, const I4& roi, const I2& size, const I4& place,
            const C3& channel, const F3& fill, const F3& scale, const F3& bias, bool fp16) {
  Call c;
  c.f.data = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(frames[0]));
  c.f.n = frames[1];
  c.f.h = frames[2];
  c.f.w = frames[3];
  c.f.c = frames[4];
  c.f.stride_n = frames[5];
  c.f.stride_h = frames[6];
  c.m.data = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(mask[0]));
  c.m.stride_n = mask[1];
  c.m.stride_h = mask[2];
  c.p.roi_x0 = roi[0];
  c.p.roi_y0 = roi[1];
  c.p.roi_x1 = roi[2];
  c.p.roi_y1 = roi[3];
  c.p.out_h = size[0];
  c.p.out_w = size[1];
  c.p.place_x = place[0];
  c.p.place_y = place[1];
  c.p.place_w = place[2];
  c.p.place_h = place[3];
  for (int k = 0; k < 3; ++k) {
    c.p.channel[k] = channel[k];
    c.p.fill[k] = fill[k];
    c.p.scale[k] = scale[k];
    c.p.bias[k] = bias[k];
  }
  c.p.fp16 = fp16;
  return c;
}

void cpu(const I7& frames, const I3& mask, const I4& roi, const I2& size, const I4& place,
         const C3& channel, const F3& fill, const F3& scale, const F3& bias, bool fp16,
         uintptr_t out) {
  Call c = unpack(frames, mask, roi, size, place, channel, fill, scale, bias, fp16);
  py::gil_scoped_release nogil;
  pp::run_cpu(c.f, c.m, c.p, reinterpret_cast<void*>(out));
}

void cuda(const I7& frames, bool frames_on_device, const I3& mask, bool mask_on_device,
          const I4& roi, const I2& size, const I4& place, const C3& channel, const F3& fill,
          const F3& scale, const F3& bias, bool fp16, uintptr_t out, uintptr_t stream) {
#ifdef USCLIP_WITH_CUDA
  Call c = unpack(frames, mask, roi, size, place, channel, fill, scale, bias, fp16);
  py::gil_scoped_release nogil;
  pp::run_cuda(c.f, frames_on_device, c.m, mask_on_device, c.p, reinterpret_cast<void*>(out),
               reinterpret_cast<void*>(stream));
#else
  (void)frames, (void)frames_on_device, (void)mask, (void)mask_on_device, (void)roi;
  (void)size, (void)place, (void)channel, (void)fill, (void)scale, (void)bias, (void)fp16;
  (void)out, (void)stream;
  usclip::no_cuda_build();
#endif
}

}  // namespace

USCLIP_REGISTER(preprocess) {
  m.def("preprocess_cpu", &cpu, py::arg("frames"), py::arg("mask"), py::arg("roi"),
        py::arg("size"), py::arg("placement"), py::arg("channel"), py::arg("fill"),
        py::arg("scale"), py::arg("bias"), py::arg("fp16"), py::arg("out"),
        "CPU kernel. frames=(ptr, n, h, w, c, stride_n, stride_h) in bytes; mask=(ptr or 0, "
        "stride_n, stride_h); out: address of a contiguous N x 3 x h x w buffer.");
  m.def("preprocess_cuda", &cuda, py::arg("frames"), py::arg("frames_on_device"),
        py::arg("mask"), py::arg("mask_on_device"), py::arg("roi"), py::arg("size"),
        py::arg("placement"), py::arg("channel"), py::arg("fill"), py::arg("scale"),
        py::arg("bias"), py::arg("fp16"), py::arg("out"), py::arg("stream"),
        "CUDA kernel (one launch per batch); out is a device address; stream a cudaStream_t.");
}
