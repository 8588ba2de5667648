// What every CUDA op binding (<op>_binding.cpp) shares: the device checks, the dispatch from a
// tensor's dtype to the launchers' element type (params.h), typed pointers, the workspace and
// the current stream. Bindings check the arguments (csrc/checks.h), set the device guard, make
// the inputs contiguous, allocate the outputs (NaN-poisoned in tests) and fill the op's params.
#pragma once

#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "../common.h"
#include "launchers.h"

namespace ntm_fast {
namespace cuda_binding {

inline void check_cuda(const char* op, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.is_cuda(), op, ": expected CUDA tensors, got ", describe(t));
}

// Calls f(T()) with the params' element type T of t's dtype (params.h: Half and BFloat16 carry
// the bits of at::Half and at::BFloat16).
template <typename F>
void dispatch(const at::Tensor& t, F&& f) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return f(float());
    case at::kDouble:
      return f(double());
    case at::kHalf:
      return f(cuda::Half());
    case at::kBFloat16:
      return f(cuda::BFloat16());
    default:
      TORCH_CHECK_TYPE(false, "ntm_fast: unsupported dtype ", t.scalar_type());
  }
}

template <typename T>
const T* cptr(const at::Tensor& t) {
  return static_cast<const T*>(t.const_data_ptr());
}
template <typename T>
T* mptr(at::Tensor& t) {
  return static_cast<T*>(t.mutable_data_ptr());
}

// A workspace of `layout` (params.h) for B * H rows, in the accumulation type of T.
template <typename T, class Layout>
at::Tensor workspace(const Layout& layout, int64_t B, int64_t H, const at::Tensor& like) {
  const auto bytes = static_cast<int64_t>(cuda::workspace_bytes<T>(layout, B, H));
  return at::empty({bytes}, like.options().dtype(at::kByte));
}
template <typename T>
cuda::acc_t<T>* ws_ptr(at::Tensor& ws) {
  return static_cast<cuda::acc_t<T>*>(ws.mutable_data_ptr());
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace cuda_binding
}  // namespace ntm_fast
