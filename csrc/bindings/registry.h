// Each binding file registers its functions with USCLIP_REGISTER(name) { ... m.def(...) ... },
// so adding an op touches no shared file.
#pragma once
#include <pybind11/pybind11.h>

#include <functional>
#include <vector>

namespace usclip::bindings {

using Registrar = void (*)(pybind11::module_&);

inline std::vector<Registrar>& registrars() {
  static std::vector<Registrar> r;
  return r;
}

struct AutoRegister {
  explicit AutoRegister(Registrar f) { registrars().push_back(f); }
};

}  // namespace usclip::bindings

#define USCLIP_REGISTER(name)                                                      \
  static void usclip_register_##name(pybind11::module_& m);                      \
  static ::usclip::bindings::AutoRegister usclip_auto_##name(usclip_register_##name); \
  static void usclip_register_##name(pybind11::module_& m)
