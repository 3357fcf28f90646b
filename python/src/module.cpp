// annx._core: module definition, exception types and configuration.
#include <pybind11/stl.h>

#include "annx/common/error.h"
#include "annx/common/thread_pool.h"
#include "annx/io/container.h"
#include "annx/simd/isa.h"
#include "glue.h"

namespace py = pybind11;

namespace annx::py_glue {
void bind_index(py::module_& m);
void bind_kernels(py::module_& m);
void bind_cluster(py::module_& m);
void bind_multivector(py::module_& m);
void bind_multitenant(py::module_& m);
}  // namespace annx::py_glue

namespace {

PyObject* make_exception(py::module_& m, const char* name, py::tuple bases, const char* doc) {
  const std::string qual = std::string("annx.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qual.c_str(), doc, bases.ptr(), nullptr);
  if (!cls) throw py::error_already_set();
  m.add_object(name, py::handle(cls));
  return cls;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "annx compiled core (use the annx package, not this module, directly)";

  // Exception hierarchy: every class derives from AnnxError and from the matching
  // builtin, so `except ValueError` keeps working for argument errors.
  static PyObject* base = make_exception(m, "AnnxError", py::make_tuple(py::handle(PyExc_Exception)),
                                         "Base class of every annx error.");
  py::handle b(base);
  static PyObject* invalid = make_exception(
      m, "InvalidArgumentError", py::make_tuple(b, py::handle(PyExc_ValueError)),
      "A bad argument: shape, dtype, dimension, NaN/inf, k, ids, metric or spec.");
  static PyObject* not_trained = make_exception(
      m, "NotTrainedError", py::make_tuple(b, py::handle(PyExc_RuntimeError)),
      "The index must be trained (index.train(x)) before this call.");
  static PyObject* unsupported = make_exception(
      m, "UnsupportedError", py::make_tuple(b, py::handle(PyExc_NotImplementedError)),
      "The operation is not supported by this index type.");
  static PyObject* format = make_exception(
      m, "FormatError", py::make_tuple(b, py::handle(PyExc_ValueError)),
      "A malformed, truncated, corrupt, foreign or future-version annx file.");

  static PyObject* cancelled = make_exception(
      m, "CancelledError", py::make_tuple(b),
      "A long call stopped because its ``progress`` callback returned False.\n\n"
      "Whatever the call had done is undone: an ``add`` removes the vectors it added, a "
      "``train`` leaves the index as it was.");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const annx::InvalidArgument& e) {
      PyErr_SetString(invalid, e.what());
    } catch (const annx::NotTrained& e) {
      PyErr_SetString(not_trained, e.what());
    } catch (const annx::Unsupported& e) {
      PyErr_SetString(unsupported, e.what());
    } catch (const annx::FormatError& e) {
      PyErr_SetString(format, e.what());
    } catch (const annx::IoError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const annx::Cancelled& e) {
      PyErr_SetString(cancelled, e.what());
    } catch (const annx::Interrupted& e) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    } catch (const annx::Error& e) {
      PyErr_SetString(base, e.what());
    }
  });

  m.attr("__version__") = ANNX_VERSION;
  m.attr("FORMAT_VERSION") = py::make_tuple(annx::io::kFormatMajor, annx::io::kFormatMinor);

  m.def("get_num_threads", &annx::get_num_threads, "Threads annx uses by default (caller included).");
  m.def("set_num_threads", &annx::set_num_threads, py::arg("n"), "Sets the default thread count (>= 1).");

  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (auto i : annx::simd::available_isas()) out.emplace_back(annx::simd::isa_name(i));
    return out;
  }, "ISA levels compiled into this build and supported by this CPU, lowest first.");
  m.def("compiled_isas", [] {
    std::vector<std::string> out;
    for (auto i : {annx::simd::Isa::Scalar, annx::simd::Isa::Avx2, annx::simd::Isa::Avx512,
                   annx::simd::Isa::Avx512Icl, annx::simd::Isa::Neon})
      if (annx::simd::compiled(i)) out.emplace_back(annx::simd::isa_name(i));
    return out;
  }, "ISA levels compiled into this build.");
  m.def("detected_isa", [] { return std::string(annx::simd::isa_name(annx::simd::best_isa())); },
        "Best ISA level this CPU supports among the compiled ones.");
  m.def("active_isa", [] { return std::string(annx::simd::isa_name(annx::simd::active_isa())); },
        "ISA level in use.");
  m.def("set_isa", [](const std::string& name) {
    annx::simd::set_active_isa(annx::simd::parse_isa(name));
  }, py::arg("name"), "Forces an ISA level ('scalar', 'avx2', 'avx512', 'avx512_icl', 'neon').");
  m.def("isa_env_warning", &annx::simd::isa_env_warning);
  m.def("cpu_brand", &annx::simd::cpu_brand);
  m.def("compiler", &annx::simd::compiler_id);
  m.def("crc32c_backend", [] { return std::string(annx::io::crc32c_backend()); });

  annx::py_glue::bind_index(m);
  annx::py_glue::bind_kernels(m);
  annx::py_glue::bind_cluster(m);
  annx::py_glue::bind_multivector(m);
  annx::py_glue::bind_multitenant(m);
}
