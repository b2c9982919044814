#include "tensor.hpp"

#include <cstring>

#include "error.hpp"
#include "registry.hpp"

namespace ssmhost {

static int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("tensor extent must be >= 0");
    n *= d;
  }
  return n;
}

// Memory comes from the host's allocator, the same one plugins use.
static std::shared_ptr<void> allocate(size_t bytes, DLDevice device) {
  const ssm_host* h = host_services();
  void* p = h->mem_alloc(h->host_data, device, bytes ? bytes : 1, 64, nullptr);
  if (!p) throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  return std::shared_ptr<void>(p, [device](void* q) {
    const ssm_host* hs = host_services();
    hs->mem_free(hs->host_data, device, q, nullptr);
  });
}

Tensor::Tensor(std::vector<int64_t> shape, DLDataType dtype, DLDevice device)
    : shape_(std::move(shape)), dtype_(dtype), device_(device) {
  numel_ = count(shape_);
  capacity_ = bytes();
  storage_ = allocate(capacity_, device_);
  sync_view();
  zero();
}

Tensor& Tensor::operator=(const Tensor& o) {
  if (this == &o) return *this;
  shape_ = o.shape_;
  numel_ = o.numel_;
  dtype_ = o.dtype_;
  device_ = o.device_;
  storage_ = o.storage_;
  capacity_ = o.capacity_;
  sync_view();
  return *this;
}

void Tensor::sync_view() {
  view_ = DLTensor{};
  view_.data = storage_.get();
  view_.device = device_;
  view_.ndim = static_cast<int32_t>(shape_.size());
  view_.dtype = dtype_;
  view_.shape = shape_.data();
  view_.strides = nullptr;
  view_.byte_offset = 0;
}

void Tensor::zero() {
  if (device_.device_type != kDLCPU) throw Error("Tensor::zero: only CPU tensors");
  if (storage_) std::memset(storage_.get(), 0, bytes());
}

Tensor Tensor::reshaped(std::vector<int64_t> shape) const {
  if (count(shape) != numel_) throw Error("reshape must keep the number of elements");
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.sync_view();
  return t;
}

void Tensor::resize(std::vector<int64_t> shape) {
  int64_t n = count(shape);
  size_t need = static_cast<size_t>(n) * (dtype_.bits / 8) * dtype_.lanes;
  shape_ = std::move(shape);
  numel_ = n;
  if (need > capacity_ || !storage_) {
    storage_ = allocate(need, device_);
    capacity_ = need;
  }
  sync_view();
}

}  // namespace ssmhost
