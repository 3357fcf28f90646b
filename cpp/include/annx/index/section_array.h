// Loading a typed array section into a SharedArray: a zero-copy view when the file is
// memory-mapped (and suitably aligned), otherwise a copy. Sizes are checked first.
#pragma once

#include <cstdint>
#include <cstring>

#include "annx/common/error.h"
#include "annx/common/shared_array.h"
#include "annx/io/container.h"

namespace annx {

template <class T>
void load_section_array(const io::ContainerReader& r, const char* tag, size_t count,
                        SharedArray<T>& dst) {
  const auto bytes = r.section(tag);
  ANNX_CHECK(FormatError, count <= bytes.size() / sizeof(T) && bytes.size() == count * sizeof(T),
             "corrupt index file: section ", tag, " has ", bytes.size(), " bytes, expected ", count,
             " x ", sizeof(T));
  if (r.blob()->is_mapped() && reinterpret_cast<uintptr_t>(bytes.data()) % alignof(T) == 0) {
    dst.set_view(r.blob(), reinterpret_cast<const T*>(bytes.data()), count);
  } else {
    auto& v = dst.mut();
    v.resize(count);
    if (count) std::memcpy(v.data(), bytes.data(), bytes.size());
  }
}

}  // namespace annx
