// An array that is either owned (std::vector) or a read-only view into a shared blob
// (an mmap'ed index file). Reads never copy; the first mutation of a view copies it
// into owned memory (copy-on-write), so a memory-mapped index stays usable for adds.
#pragma once

#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "annx/common/big_alloc.h"

namespace annx {

template <class T>
class SharedArray {
 public:
  SharedArray() = default;

  const T* data() const { return view_ ? view_ : owned_.data(); }
  size_t size() const { return view_ ? view_size_ : owned_.size(); }
  bool empty() const { return size() == 0; }
  const T& operator[](size_t i) const { return data()[i]; }
  std::span<const T> span() const { return {data(), size()}; }
  bool is_view() const { return view_ != nullptr; }

  /// Points at `n` elements kept alive by `keepalive` (e.g. an io::Blob).
  void set_view(std::shared_ptr<const void> keepalive, const T* p, size_t n) {
    owned_.clear();
    owned_.shrink_to_fit();
    keep_ = std::move(keepalive);
    view_ = n ? p : nullptr;
    view_size_ = n;
  }

  /// Mutable access; copies a view into owned memory first.
  std::vector<T, BigAllocator<T>>& mut() {
    if (view_) {
      owned_.assign(view_, view_ + view_size_);
      view_ = nullptr;
      view_size_ = 0;
      keep_.reset();
    }
    return owned_;
  }

 private:
  std::vector<T, BigAllocator<T>> owned_;
  std::shared_ptr<const void> keep_;
  const T* view_ = nullptr;
  size_t view_size_ = 0;
};

}  // namespace annx
