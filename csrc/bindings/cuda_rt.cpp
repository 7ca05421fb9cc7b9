// usclip_sdk._native.rt_*: the CUDA runtime calls the TensorRT backend needs, as integer
// handles. Failures (and, in a CPU-only build, every call) raise usclip_sdk.errors.DeviceError.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

#include "bindings/registry.h"
#include "common/errors.h"
#ifdef USCLIP_WITH_CUDA
#include "common/cuda_rt.h"
#endif

namespace py = pybind11;

namespace {

#ifdef USCLIP_WITH_CUDA
void* P(std::uintptr_t v) { return reinterpret_cast<void*>(v); }
std::uintptr_t U(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
#else
[[noreturn]] void no_cuda() { usclip::no_cuda_build(); }
#endif

}  // namespace

USCLIP_REGISTER(cuda_rt) {
#ifdef USCLIP_WITH_CUDA
  namespace rt = usclip::rt;
  m.def("rt_stream_create", [] { return U(rt::stream_create()); });
  m.def("rt_stream_destroy", [](std::uintptr_t s) { rt::stream_destroy(P(s)); }, py::arg("stream"));
  m.def("rt_stream_sync", [](std::uintptr_t s) {
    py::gil_scoped_release nogil;
    rt::stream_sync(P(s));
  }, py::arg("stream"));
  m.def("rt_host_alloc_pinned", [](size_t n) { return U(rt::host_alloc_pinned(n)); }, py::arg("bytes"));
  m.def("rt_host_free_pinned", [](std::uintptr_t p) { rt::host_free_pinned(P(p)); }, py::arg("ptr"));
  m.def("rt_memcpy_async", [](std::uintptr_t dst, std::uintptr_t src, size_t n, int kind, std::uintptr_t s) {
    rt::memcpy_async(P(dst), P(src), n, kind, P(s));
  }, py::arg("dst"), py::arg("src"), py::arg("bytes"), py::arg("kind"), py::arg("stream"));
  m.def("rt_graph_begin_capture", [](std::uintptr_t s) { rt::graph_begin_capture(P(s)); }, py::arg("stream"));
  m.def("rt_graph_end_capture", [](std::uintptr_t s) { return U(rt::graph_end_capture(P(s))); }, py::arg("stream"));
  m.def("rt_graph_launch", [](std::uintptr_t g, std::uintptr_t s) { rt::graph_launch(P(g), P(s)); },
        py::arg("graph"), py::arg("stream"));
  m.def("rt_graph_destroy", [](std::uintptr_t g) { rt::graph_destroy(P(g)); }, py::arg("graph"));
  m.def("rt_set_device", [](int d) { rt::set_device(d); }, py::arg("device"));
#else
  for (const char* name : {"rt_stream_create", "rt_stream_destroy", "rt_stream_sync",
                           "rt_host_alloc_pinned", "rt_host_free_pinned", "rt_memcpy_async",
                           "rt_graph_begin_capture", "rt_graph_end_capture", "rt_graph_launch",
                           "rt_graph_destroy", "rt_set_device"})
    m.def(name, [](py::args, py::kwargs) { no_cuda(); });
#endif
}
