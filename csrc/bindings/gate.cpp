// Binding of the input-quality gate kernels (usclip_sdk.ops.gate is the public face, which
// validates first; the CPU entry repeats the cheap checks on the arrays it reads so the module
// cannot be crashed from Python). Both return the unrounded figures as one tuple, in the order
// of usclip_sdk.ops.gate.GateFigures.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>

#include "bindings/registry.h"
#include "common/errors.h"
#include "ops/gate/gate.h"

namespace py = pybind11;
namespace gt = usclip::gate;

namespace {

using I4 = std::array<int64_t, 4>;
using I7 = std::array<int64_t, 7>;
using I3 = std::array<int64_t, 3>;

bool is_byte(const py::array& a, bool allow_bool) {
  const char kind = a.dtype().kind();
  return a.dtype().itemsize() == 1 && (kind == 'u' || (allow_bool && kind == 'b'));
}

gt::Image host_image(const py::array& a) {
  if (!is_byte(a, false))
    throw py::type_error("pixels must be uint8, found " + std::string(py::str(a.dtype())));
  if (a.ndim() != 2 && a.ndim() != 3) throw py::value_error("pixels must be H x W or H x W x C");
  gt::Image im;
  im.data = static_cast<const uint8_t*>(a.data());
  im.h = a.shape(0);
  im.w = a.shape(1);
  im.c = a.ndim() == 3 ? a.shape(2) : 1;
  im.sy = a.strides(0);
  im.sx = a.strides(1);
  im.sc = a.ndim() == 3 ? a.strides(2) : 1;
  return im;
}

gt::Mask host_mask(const py::array& a, const gt::Image& im) {
  if (!is_byte(a, true))
    throw py::type_error("mask must be uint8 or bool, found " + std::string(py::str(a.dtype())));
  if (a.ndim() != 2 || a.shape(0) != im.h || a.shape(1) != im.w)
    throw py::value_error("mask must be H x W, the frame's size");
  return gt::Mask{static_cast<const uint8_t*>(a.data()), a.strides(0), a.strides(1)};
}

gt::Box box(const I4& b) { return gt::Box{b[0], b[1], b[2], b[3]}; }

py::tuple to_tuple(const gt::Figures& f) {
  return py::make_tuple(f.pixels, f.area, f.whole_frame, f.contrast, f.mean, f.p99, f.dark,
                        f.colour, f.grey_levels, f.flat, f.correlation, f.texture, f.speckle_snr);
}

py::tuple cpu(const py::array& pixels, const py::array& mask, const I4& bbox) {
  const gt::Image im = host_image(pixels);
  const gt::Mask m = host_mask(mask, im);
  gt::Figures f;
  {
    py::gil_scoped_release nogil;  // the arrays stay referenced by the caller's frame
    f = gt::run_cpu(im, m, box(bbox));
  }
  return to_tuple(f);
}

py::tuple cuda(const I7& pixels, bool pixels_on_device, const I3& mask, bool mask_on_device,
               const I4& bbox, uintptr_t stream) {
#ifdef USCLIP_WITH_CUDA
  gt::Image im;
  im.data = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(pixels[0]));
  im.h = pixels[1];
  im.w = pixels[2];
  im.c = pixels[3];
  im.sy = pixels[4];
  im.sx = pixels[5];
  im.sc = pixels[6];
  const gt::Mask m{reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(mask[0])), mask[1], mask[2]};
  gt::Figures f;
  {
    py::gil_scoped_release nogil;  // a DeviceFailure becomes DeviceError (bindings/main.cpp)
    f = gt::run_cuda(im, pixels_on_device, m, mask_on_device, box(bbox), reinterpret_cast<void*>(stream));
  }
  return to_tuple(f);
#else
  (void)pixels, (void)pixels_on_device, (void)mask, (void)mask_on_device, (void)bbox, (void)stream;
  usclip::no_cuda_build();
#endif
}

}  // namespace

USCLIP_REGISTER(gate) {
  m.def("gate_cpu", &cpu, py::arg("pixels"), py::arg("mask"), py::arg("bbox"),
        "Input-quality gate figures on the CPU: pixels uint8 H x W (x C), mask uint8/bool H x W, "
        "bbox (x0, y0, x1, y1) -> (pixels, area, whole_frame, contrast, mean, p99, dark, colour, "
        "grey_levels, flat, correlation, texture, speckle_snr).");
  m.def("gate_cuda", &cuda, py::arg("pixels"), py::arg("pixels_on_device"), py::arg("mask"),
        py::arg("mask_on_device"), py::arg("bbox"), py::arg("stream"),
        "The same figures on a CUDA device. pixels=(ptr, h, w, c, stride_h, stride_w, stride_c) "
        "and mask=(ptr, stride_h, stride_w), byte strides; host inputs need contiguous rows. "
        "Waits for the stream.");
  m.def("gate_cpu_variant", &gt::cpu_kernel_variant, "CPU gate kernel variant in use.");
}
