// Raw device memory and DLPack glue for usclip_sdk.ops.device.DeviceArray (and for reading
// DLPack inputs). Pointers travel as Python ints; ownership stays with DeviceArray.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "bindings/registry.h"
#include "common/device_buffer.h"

namespace py = pybind11;

namespace {

// DLPack (v0.8 ABI, the unversioned "dltensor" capsule every framework accepts).
struct DLDevice { int32_t device_type, device_id; };
struct DLDataType { uint8_t code, bits; uint16_t lanes; };
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor*);
};

struct Ctx {
  PyObject* owner;  // strong reference: keeps the DeviceArray (and its memory) alive
  std::vector<int64_t> shape;
};

void delete_managed(DLManagedTensor* t) {
  auto* ctx = static_cast<Ctx*>(t->manager_ctx);
  {
    py::gil_scoped_acquire gil;  // the consumer may free from any thread
    Py_XDECREF(ctx->owner);
  }
  delete ctx;
  delete t;
}

void capsule_destructor(PyObject* cap) {
  // Only an unconsumed capsule still owns its tensor (consumers rename it "used_dltensor").
  if (!PyCapsule_IsValid(cap, "dltensor")) return;
  auto* t = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
  if (t && t->deleter) t->deleter(t);
}

py::object to_dlpack(py::object owner, uintptr_t ptr, std::vector<int64_t> shape, int code,
                     int bits, int device_type, int device_id) {
  auto* ctx = new Ctx{owner.ptr(), std::move(shape)};
  Py_INCREF(ctx->owner);
  auto* t = new DLManagedTensor{};
  t->dl_tensor.data = reinterpret_cast<void*>(ptr);
  t->dl_tensor.device = {device_type, device_id};
  t->dl_tensor.ndim = static_cast<int32_t>(ctx->shape.size());
  t->dl_tensor.dtype = {static_cast<uint8_t>(code), static_cast<uint8_t>(bits), 1};
  t->dl_tensor.shape = ctx->shape.data();
  t->dl_tensor.strides = nullptr;  // compact row-major
  t->dl_tensor.byte_offset = 0;
  t->manager_ctx = ctx;
  t->deleter = delete_managed;
  PyObject* cap = PyCapsule_New(t, "dltensor", capsule_destructor);
  if (!cap) {
    delete_managed(t);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(cap);
}

// Reads a "dltensor" capsule without consuming it: the caller keeps the capsule alive for the
// call and its destructor releases the producer's memory afterwards.
py::dict dlpack_view(py::capsule cap) {
  if (!PyCapsule_IsValid(cap.ptr(), "dltensor"))
    throw std::invalid_argument("frames: expected an unconsumed 'dltensor' DLPack capsule");
  auto* t = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
  const DLTensor& d = t->dl_tensor;
  py::dict r;
  r["ptr"] = reinterpret_cast<uintptr_t>(d.data) + d.byte_offset;
  std::vector<int64_t> shape(d.shape, d.shape + d.ndim);
  r["shape"] = shape;
  if (d.strides) r["strides"] = std::vector<int64_t>(d.strides, d.strides + d.ndim);
  else r["strides"] = py::none();
  r["code"] = static_cast<int>(d.dtype.code);
  r["bits"] = static_cast<int>(d.dtype.bits);
  r["lanes"] = static_cast<int>(d.dtype.lanes);
  r["device_type"] = d.device.device_type;
  r["device_id"] = d.device.device_id;
  return r;
}

#ifdef USCLIP_WITH_CUDA
void* vp(uintptr_t p) { return reinterpret_cast<void*>(p); }
#endif

}  // namespace

USCLIP_REGISTER(device_buffer) {
  m.def("to_dlpack", &to_dlpack, py::arg("owner"), py::arg("ptr"), py::arg("shape"),
        py::arg("code"), py::arg("bits"), py::arg("device_type"), py::arg("device_id"),
        "A 'dltensor' capsule over compact memory that keeps `owner` alive.");
  m.def("dlpack_view", &dlpack_view, py::arg("capsule"), "Fields of a DLPack capsule.");
#ifdef USCLIP_WITH_CUDA
  m.def("device_malloc", [](size_t n) { return reinterpret_cast<uintptr_t>(usclip::device_malloc(n)); });
  m.def("device_free", [](uintptr_t p) { usclip::device_free(vp(p)); });
  m.def("memcpy_htod", [](uintptr_t dst, uintptr_t src, size_t n, uintptr_t s) {
    py::gil_scoped_release nogil;
    usclip::memcpy_htod(vp(dst), vp(src), n, vp(s));
  });
  m.def("memcpy_dtoh", [](uintptr_t dst, uintptr_t src, size_t n, uintptr_t s) {
    py::gil_scoped_release nogil;
    usclip::memcpy_dtoh(vp(dst), vp(src), n, vp(s));
  });
  m.def("stream_synchronize", [](uintptr_t s) {
    py::gil_scoped_release nogil;
    usclip::stream_synchronize(vp(s));
  });
  m.def("current_device", &usclip::current_device);
  m.def("pointer_device", [](uintptr_t p) { return usclip::pointer_device(vp(p)); });
#endif
}
