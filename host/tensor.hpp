// The host's tensor: a dense row-major array that knows its dtype and device,
// with storage from the host's allocator, viewed as a DLTensor at the ABI.
#pragma once

#include <ssm/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ssmhost {

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::vector<int64_t> shape, DLDataType dtype, DLDevice device = {kDLCPU, 0});
  template <class T>
  static Tensor of(std::vector<int64_t> shape) {
    return Tensor(std::move(shape), ssm::dtype_of<T>::value);
  }

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(static_cast<size_t>(i < 0 ? i + ndim() : i)); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  DLDataType dtype() const { return dtype_; }
  DLDevice device() const { return device_; }
  size_t bytes() const { return static_cast<size_t>(numel_) * (dtype_.bits / 8) * dtype_.lanes; }
  bool empty() const { return numel_ == 0; }

  void* raw() const { return storage_.get(); }
  template <class T>
  T* data() const {
    if (!ssm::same_dtype(dtype_, ssm::dtype_of<T>::value))
      throw std::runtime_error("tensor has dtype " + ssm::dtype_name(dtype_) + ", accessed as " +
                               ssm::dtype_name(ssm::dtype_of<T>::value));
    return static_cast<T*>(storage_.get());
  }
  void zero();

  // A borrowed DLTensor view; valid while this tensor lives (not after reshape).
  DLTensor* dl() { return &view_; }
  const DLTensor* dl() const { return &view_; }

  // Same storage, new shape with the same number of elements.
  Tensor reshaped(std::vector<int64_t> shape) const;
  // Keeps the storage when the shape's size matches, else reallocates.
  void resize(std::vector<int64_t> shape);

  Tensor(const Tensor& o) { *this = o; }
  Tensor& operator=(const Tensor& o);

 private:
  void sync_view();

  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  DLDataType dtype_{kDLFloat, 32, 1};
  DLDevice device_{kDLCPU, 0};
  std::shared_ptr<void> storage_;
  size_t capacity_ = 0;  // bytes
  DLTensor view_{};
};

}  // namespace ssmhost
