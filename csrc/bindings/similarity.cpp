// Python binding of the similarity op (private; usclip_sdk.ops.similarity is the public face,
// which validates arguments first; these checks repeat the cheap ones so the module cannot
// be crashed from Python).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/registry.h"
#include "ops/similarity/similarity.h"

namespace py = pybind11;
namespace sim = usclip::similarity;

namespace {

sim::DType dtype_of(const py::array& a, const char* name) {
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  if (kind == 'f' && size == 4) return sim::DType::kF32;
  if (kind == 'f' && size == 2) return sim::DType::kF16;
  throw py::type_error(std::string(name) + " must be float32 or float16, found " +
                       std::string(py::str(a.dtype())));
}

// A 2-D host array with unit column stride (the Python face makes one when needed).
sim::Matrix host_matrix(const py::array& a, const char* name) {
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  sim::Matrix m;
  m.dtype = dtype_of(a, name);
  const auto item = static_cast<py::ssize_t>(a.itemsize());
  m.data = a.data();
  m.rows = a.shape(0);
  m.cols = a.shape(1);
  m.row_stride = m.cols;
  if (m.rows == 0) return m;  // numpy gives empty arrays arbitrary strides
  if (a.shape(1) > 1 && a.strides(1) != item) {
    throw py::value_error(std::string(name) + " must have contiguous rows");
  }
  if (a.strides(0) % item != 0) throw py::value_error(std::string(name) + " has unaligned rows");
  m.row_stride = a.strides(0) / item;
  return m;
}

// (pointer, rows, cols, row_stride_elements, is_float16) for a device array.
sim::Matrix device_matrix(const py::tuple& t) {
  sim::Matrix m;
  m.data = reinterpret_cast<const void*>(t[0].cast<uintptr_t>());
  m.rows = t[1].cast<int64_t>();
  m.cols = t[2].cast<int64_t>();
  m.row_stride = t[3].cast<int64_t>();
  m.dtype = t[4].cast<bool>() ? sim::DType::kF16 : sim::DType::kF32;
  return m;
}

// A device tuple (sets on_device) or a host array.
sim::Matrix any_matrix(const py::object& obj, const char* name, bool& on_device) {
  on_device = py::isinstance<py::tuple>(obj);
  return on_device ? device_matrix(obj.cast<py::tuple>())
                   : host_matrix(obj.cast<py::array>(), name);
}

struct Result {
  py::array_t<float> logits, probs, topk_values, group_probs;
  py::array_t<int64_t> topk_indices, group_argmax;
  sim::Outputs out;

  Result(int64_t n, int64_t k, int64_t topk, int64_t groups)
      : logits({n, k}), probs({n, k}), topk_values({n, topk}), topk_indices({n, topk}) {
    out.logits = logits.mutable_data();
    out.probs = probs.mutable_data();
    out.topk_values = topk_values.mutable_data();
    out.topk_indices = topk_indices.mutable_data();
    if (groups > 0) {
      group_probs = py::array_t<float>({n, groups});
      group_argmax = py::array_t<int64_t>({n, groups});
      out.group_probs = group_probs.mutable_data();
      out.group_argmax = group_argmax.mutable_data();
    }
  }

  py::tuple to_tuple(int64_t groups) const {
    if (groups == 0) return py::make_tuple(logits, probs, topk_indices, topk_values, py::none(), py::none());
    return py::make_tuple(logits, probs, topk_indices, topk_values, group_argmax, group_probs);
  }
};

using Offsets = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// The options; `keep` holds the group offsets array alive while the kernel reads it.
sim::Options options(float scale, float bias, bool normalize, int64_t topk,
                     const py::object& group_offsets, Offsets& keep) {
  sim::Options o;
  o.scale = scale;
  o.bias = bias;
  o.normalize = normalize;
  o.topk = topk;
  if (!group_offsets.is_none()) {
    keep = Offsets::ensure(group_offsets);
    if (!keep || keep.ndim() != 1 || keep.size() < 2) {
      throw py::value_error("group_offsets must be a 1-D int64 array of G+1 offsets");
    }
    o.groups = static_cast<int64_t>(keep.size()) - 1;
    o.group_offsets = keep.data();
  }
  return o;
}

py::tuple run_cpu(const py::array& image, const py::array& classes, float scale, float bias,
                  bool normalize, int64_t topk, const py::object& group_offsets,
                  const py::object& dots, const py::object& class_scale) {
  const sim::Matrix x = host_matrix(image, "image_emb"), c = host_matrix(classes, "class_emb");
  Offsets keep;
  sim::Options o = options(scale, bias, normalize, topk, group_offsets, keep);
  py::array_t<float, py::array::c_style> dk;
  if (!dots.is_none()) {
    dk = dots.cast<py::array_t<float, py::array::c_style>>();
    if (dk.ndim() != 2 || dk.shape(0) != x.rows || dk.shape(1) != c.rows) {
      throw py::value_error("dots must be N x K float32");
    }
    o.dots = dk.data();
  }
  py::array_t<float, py::array::c_style> cs;
  if (!class_scale.is_none()) {  // finite by construction (the Python face's ClassEmbeddings)
    cs = class_scale.cast<py::array_t<float, py::array::c_style>>();
    if (cs.ndim() != 1 || cs.shape(0) != c.rows) {
      throw py::value_error("class_scale must be K float32 factors, one per class_emb row");
    }
    o.class_scale = cs.data();
  }
  sim::validate(x, c, o);
  Result r(x.rows, c.rows, o.topk, o.groups);
  {
    py::gil_scoped_release nogil;
    sim::similarity_cpu(x, c, o, r.out);
  }
  return r.to_tuple(o.groups);
}

py::tuple run_cuda(const py::object& image, const py::object& classes, float scale, float bias,
                   bool normalize, int64_t topk, const py::object& group_offsets,
                   uintptr_t stream, int device, const py::object& out_ptrs) {
  sim::CudaCall call;
  call.stream = reinterpret_cast<void*>(stream);
  call.device = device;
  const sim::Matrix x = any_matrix(image, "image_emb", call.image_on_device);
  const sim::Matrix c = any_matrix(classes, "class_emb", call.classes_on_device);
  Offsets keep;
  sim::Options o = options(scale, bias, normalize, topk, group_offsets, keep);
  sim::validate(x, c, o);
  // Device outputs: six caller-owned C-contiguous buffers (logits, probs, topk_indices,
  // topk_values, group_argmax, group_probs; the last two 0 without groups).
  const bool dev_out = !out_ptrs.is_none();
  Result r(dev_out ? 0 : x.rows, c.rows, dev_out ? 0 : o.topk, dev_out ? 0 : o.groups);
  if (dev_out) {
    auto t = out_ptrs.cast<py::tuple>();
    if (t.size() != 6) throw py::value_error("out_ptrs must hold 6 device pointers");
    auto ptr = [&](int i) { return reinterpret_cast<void*>(t[i].cast<uintptr_t>()); };
    r.out = sim::Outputs{static_cast<float*>(ptr(0)), static_cast<float*>(ptr(1)),
                         static_cast<int64_t*>(ptr(2)), static_cast<float*>(ptr(3)),
                         static_cast<int64_t*>(ptr(4)), static_cast<float*>(ptr(5))};
    call.outputs_on_device = true;
  }
#ifdef USCLIP_WITH_CUDA
  {
    py::gil_scoped_release nogil;  // a DeviceFailure becomes DeviceError (bindings/main.cpp)
    sim::similarity_cuda(x, c, o, r.out, call);
  }
#else
  usclip::no_cuda_build();
#endif
  if (dev_out) return py::tuple();
  return r.to_tuple(o.groups);
}

}  // namespace

USCLIP_REGISTER(similarity) {
  m.def("similarity_cpu", &run_cpu, py::arg("image"), py::arg("classes"), py::arg("scale"),
        py::arg("bias"), py::arg("normalize"), py::arg("topk"), py::arg("group_offsets"),
        py::arg("dots") = py::none(), py::arg("class_scale") = py::none(),
        "Fused similarity on the CPU -> (logits, probs, topk_indices, topk_values, "
        "group_argmax|None, group_probs|None). class_scale: K prepared per-class factors "
        "(then class_emb is neither normed nor checked).");
  m.def("similarity_cuda", &run_cuda, py::arg("image"), py::arg("classes"), py::arg("scale"),
        py::arg("bias"), py::arg("normalize"), py::arg("topk"), py::arg("group_offsets"),
        py::arg("stream") = 0, py::arg("device") = -1, py::arg("out_ptrs") = py::none(),
        "Fused similarity on a CUDA device; inputs are host arrays or (ptr, rows, cols, "
        "row_stride, is_f16) device tuples; outputs are host arrays, or written to the six "
        "device buffers in out_ptrs (then an empty tuple is returned).");
  m.def("similarity_cpu_variant", &sim::cpu_kernel_variant, "CPU kernel variant in use.");
}
