// ssm::Buf<T>: a std::vector whose elements start uninitialised, for scratch
// and activation buffers that are written before they are read (no zeroing
// pass over megabytes on every resize).
#pragma once

#include <memory>
#include <utility>
#include <vector>

namespace ssm {

template <typename T>
struct NoInit : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = NoInit<U>;
  };
  NoInit() = default;
  template <class U>
  NoInit(const NoInit<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T>
using Buf = std::vector<T, NoInit<T>>;

}  // namespace ssm
