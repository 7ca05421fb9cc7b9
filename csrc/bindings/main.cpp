// The private compiled module usclip_sdk._native: build facts plus every registered op.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/registry.h"
#include "common/device.h"
#include "common/errors.h"
#include "common/parallel.h"

namespace py = pybind11;

#ifndef USCLIP_VERSION
#define USCLIP_VERSION "0.0.0"
#endif

static py::dict build_info() {
  py::dict d;
  d["version"] = USCLIP_VERSION;
  d["cpu_kernels"] = true;
#ifdef USCLIP_WITH_CUDA
  d["cuda_kernels"] = true;
  d["cuda_architectures"] = std::string(USCLIP_CUDA_ARCHS);
  d["cuda_toolkit"] = std::string(USCLIP_CUDA_VERSION);
#else
  d["cuda_kernels"] = false;
  d["cuda_architectures"] = std::string("");
  d["cuda_toolkit"] = std::string("");
#endif
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#endif
  return d;
}

static py::dict cuda_status() {
  py::dict d;
#ifdef USCLIP_WITH_CUDA
  usclip::CudaStatus s;
  {
    py::gil_scoped_release nogil;
    s = usclip::cuda_status();
  }
  d["usable"] = s.usable;
  d["reason"] = s.reason;
  d["runtime_version"] = s.runtime_version;
  d["driver_version"] = s.driver_version;
  py::list devs;
  for (const auto& dev : s.devices) {
    py::dict e;
    e["name"] = dev.name;
    e["compute_capability"] = py::make_tuple(dev.major, dev.minor);
    e["total_memory"] = dev.total_memory;
    devs.append(e);
  }
  d["devices"] = devs;
#else
  d["usable"] = false;
  d["reason"] = "the extension was built without CUDA kernels (USCLIP_CUDA=OFF or no nvcc)";
  d["runtime_version"] = 0;
  d["driver_version"] = 0;
  d["devices"] = py::list();
#endif
  return d;
}

// The one error map (common/errors.h): registered once, for every op and rt_* call.
// std::invalid_argument -> ValueError is pybind11's own default translation.
static void register_error_map() {
  // A leaked reference: the class lives as long as the interpreter, and a static py::object
  // would be destroyed after Python at exit.
  static PyObject* device_error =
      py::object(py::module_::import("usclip_sdk.errors").attr("DeviceError")).release().ptr();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const usclip::DeviceFailure& e) {
      PyErr_SetString(device_error, e.what());
    }
  });
}

PYBIND11_MODULE(_native, m) {
  m.doc() = "usclip native kernels (CPU and CUDA); use usclip_sdk.ops, not this module";
  register_error_map();
  m.def("build_info", &build_info, "Facts fixed at compile time.");
  m.def("cuda_status", &cuda_status, "Whether CUDA can run here, and why not.");
  m.def("num_threads", &usclip::num_threads, "Threads the CPU kernels use.");
  m.def("set_num_threads", &usclip::set_num_threads, py::arg("n"),
        "Set the CPU kernels' thread count (n < 1 restores the default).");
  for (auto reg : usclip::bindings::registrars()) reg(m);
}
