// Shared helpers of the pybind11 glue: array views, output allocation and running C++
// work with the GIL released while Ctrl-C stays responsive (and progress is reported to
// a Python callback).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <utility>

#include "annx/common/error.h"
#include "annx/common/thread_pool.h"
#include "annx/index/id_map.h"
#include "annx/io/container.h"

namespace annx::py_glue {

namespace py = pybind11;

/// Polled (rate-limited) by annx's thread pool on the calling thread.
inline bool python_interrupt_hook() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;  // leaves KeyboardInterrupt set for the translator
}

/// Runs f() with the GIL released and the interrupt hook installed.
template <class F>
auto without_gil(F&& f) -> decltype(f()) {
  py::gil_scoped_release release;
  InterruptScope scope(&python_interrupt_hook);
  return f();
}

/// Calls the Python callable `ctx` (a py::object*) as ctx(done, total) with the GIL;
/// a False result cancels. An exception it raises propagates (error_already_set).
inline bool python_progress_hook(void* ctx, size_t done, size_t total) {
  py::gil_scoped_acquire gil;
  const py::object r = (*static_cast<const py::object*>(ctx))(done, total);
  return r.ptr() != Py_False;
}

/// without_gil, also reporting progress to `progress` (None: nowhere), a callable
/// progress(done, total) that may return False to cancel (annx::Cancelled).
template <class F>
auto without_gil(const py::object& progress, F&& f) -> decltype(f()) {
  if (progress.is_none()) return without_gil(std::forward<F>(f));
  ANNX_CHECK(InvalidArgument, PyCallable_Check(progress.ptr()),
             "progress must be None or a callable(done, total)");
  // The hook's context; released (with the GIL held again) after the scopes end.
  py::object callback = progress;
  py::gil_scoped_release release;
  InterruptScope interrupt(&python_interrupt_hook);
  ProgressScope scope(&python_progress_hook, &callback);
  return f();
}

/// C-contiguous arrays of exactly dtype T (the Python layer converts and validates;
/// this is the last line of defence for direct _core users).
template <class T>
using CArray = py::array_t<T, py::array::c_style>;

template <class T>
const T* rows_ptr(const CArray<T>& a, ssize_t cols, const char* what, ssize_t* nrows) {
  ANNX_CHECK(InvalidArgument, a.ndim() == 2 && a.shape(1) == cols, what, " must have shape (n, ",
             cols, "), got ",
             a.ndim() == 2 ? std::to_string(a.shape(0)) + ", " + std::to_string(a.shape(1))
                           : std::to_string(a.ndim()) + "-D array");
  *nrows = a.shape(0);
  // numpy arrays built over a byte buffer at an odd offset (e.g. deserialised from a
  // network stream) can be misaligned; reading them as T would be undefined behaviour.
  ANNX_CHECK(InvalidArgument, reinterpret_cast<uintptr_t>(a.data()) % alignof(T) == 0, what,
             " is not aligned to ", alignof(T), " bytes; pass a copy (numpy.array(x))");
  return a.data();
}

/// A search's optional id filter: an id list or a boolean mask indexed by id.
struct FilterArgs {
  std::optional<CArray<int64_t>> ids;
  std::optional<CArray<uint8_t>> mask;
  IdFilter filter;
  const IdFilter* get() {
    if (ids) {
      filter.ids = ids->data();
      filter.n_ids = static_cast<size_t>(ids->size());
      return &filter;
    }
    if (mask) {
      filter.mask = mask->data();
      filter.mask_len = static_cast<size_t>(mask->size());
      return &filter;
    }
    return nullptr;
  }
};

/// A private copy of a bytes-like object's bytes (from_bytes). Any one-dimensional byte
/// buffer is accepted, strided or reversed ones (memoryview(b)[::-1]) included: they are
/// gathered element by element rather than read as if contiguous.
inline std::shared_ptr<const io::Blob> blob_from_buffer(const py::buffer& data) {
  const py::buffer_info info = data.request();
  ANNX_CHECK(InvalidArgument, info.ndim == 1 && info.itemsize == 1,
             "from_bytes expects a one-dimensional bytes-like object, got ndim=", info.ndim,
             " itemsize=", info.itemsize);
  const auto n = static_cast<size_t>(info.size);
  const auto stride = info.strides.empty() ? py::ssize_t{1} : info.strides[0];
  if (stride == 1 || n <= 1) return io::Blob::copy_of(info.ptr, n);
  std::vector<uint8_t> bytes(n);
  const auto* p = static_cast<const uint8_t*>(info.ptr);
  for (size_t i = 0; i < n; ++i) bytes[i] = *(p + static_cast<py::ssize_t>(i) * stride);
  return io::Blob::copy_of(bytes.data(), n);  // aligned copy
}

}  // namespace annx::py_glue
