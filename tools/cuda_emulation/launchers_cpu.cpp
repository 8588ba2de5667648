// The memory-op launchers of csrc/cuda/launchers.h on the CPU (tools/cuda_emulation): each
// calls the registered ntm_fast CPU op on views of the buffers and copies its results out, so
// the emulated drivers run the CPU op's memory math (the CUDA kernels are tested on their own
// by tests/ops/test_backend_ops.py on a GPU).
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/ops/from_blob.h>

#include <vector>

#include "cuda/launchers.h"

namespace ntm_fast {
namespace cuda {
namespace {

at::Tensor view(DType t, const void* p, at::IntArrayRef sizes) {
  const auto dtype = t == DType::Float64 ? at::kDouble : at::kFloat;
  return at::from_blob(const_cast<void*>(p), sizes, at::TensorOptions().dtype(dtype));
}

std::vector<at::Tensor> call(const char* name, const std::vector<at::Tensor>& args) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  torch::jit::Stack stack(args.begin(), args.end());
  op.callBoxed(stack);
  std::vector<at::Tensor> out;
  for (const auto& v : stack) out.push_back(v.toTensor());
  return out;
}

void put(const at::Tensor& src, DType t, void* dst, at::IntArrayRef sizes) {
  view(t, dst, sizes).copy_(src);
}

}  // namespace

cudaError_t address_fwd(DType t, const void* memory, const void* key, const void* beta,
                        const void* gate, const void* shift, const void* gamma,
                        const void* w_prev, void* out, void*, int64_t B, int64_t H, int64_t N,
                        int64_t W, int64_t S, cudaStream_t) {
  const auto r = call("ntm_fast::address_fwd",
                      {view(t, memory, {B, N, W}), view(t, key, {B, H, W}), view(t, beta, {B, H}),
                       view(t, gate, {B, H}), view(t, shift, {B, H, S}), view(t, gamma, {B, H}),
                       view(t, w_prev, {B, H, N})});
  put(r[0], t, out, {B, H, N});
  return cudaSuccess;
}

cudaError_t address_bwd(DType t, const void* grad, const void* memory, const void* key,
                        const void* beta, const void* gate, const void* shift, const void* gamma,
                        const void* w_prev, void* g_memory, void* g_key, void* g_beta,
                        void* g_gate, void* g_shift, void* g_gamma, void* g_w_prev, void*,
                        int64_t B, int64_t H, int64_t N, int64_t W, int64_t S, cudaStream_t) {
  const auto r = call("ntm_fast::address_bwd",
                      {view(t, grad, {B, H, N}), view(t, memory, {B, N, W}),
                       view(t, key, {B, H, W}), view(t, beta, {B, H}), view(t, gate, {B, H}),
                       view(t, shift, {B, H, S}), view(t, gamma, {B, H}),
                       view(t, w_prev, {B, H, N})});
  put(r[0], t, g_memory, {B, N, W});
  put(r[1], t, g_key, {B, H, W});
  put(r[2], t, g_beta, {B, H});
  put(r[3], t, g_gate, {B, H});
  put(r[4], t, g_shift, {B, H, S});
  put(r[5], t, g_gamma, {B, H});
  put(r[6], t, g_w_prev, {B, H, N});
  return cudaSuccess;
}

cudaError_t read_fwd(DType t, const void* memory, const void* w, void* out, int64_t B, int64_t H,
                     int64_t N, int64_t W, cudaStream_t) {
  const auto r = call("ntm_fast::read_fwd", {view(t, memory, {B, N, W}), view(t, w, {B, H, N})});
  put(r[0], t, out, {B, H, W});
  return cudaSuccess;
}

cudaError_t read_bwd(DType t, const void* grad, const void* memory, const void* w,
                     void* g_memory, void* g_w, int64_t B, int64_t H, int64_t N, int64_t W,
                     cudaStream_t) {
  const auto r = call("ntm_fast::read_bwd", {view(t, grad, {B, H, W}),
                                             view(t, memory, {B, N, W}), view(t, w, {B, H, N})});
  put(r[0], t, g_memory, {B, N, W});
  put(r[1], t, g_w, {B, H, N});
  return cudaSuccess;
}

cudaError_t write_fwd(DType t, const void* memory, const void* w, const void* erase,
                      const void* add, void* out, int64_t B, int64_t H, int64_t N, int64_t W,
                      cudaStream_t) {
  const auto r = call("ntm_fast::write_fwd", {view(t, memory, {B, N, W}), view(t, w, {B, H, N}),
                                              view(t, erase, {B, H, W}), view(t, add, {B, H, W})});
  put(r[0], t, out, {B, N, W});
  return cudaSuccess;
}

cudaError_t write_bwd(DType t, const void* grad, const void* memory, const void* w,
                      const void* erase, const void* add, void* g_memory, void* g_w,
                      void* g_erase, void* g_add, int64_t B, int64_t H, int64_t N, int64_t W,
                      cudaStream_t) {
  const auto r = call("ntm_fast::write_bwd",
                      {view(t, grad, {B, N, W}), view(t, memory, {B, N, W}),
                       view(t, w, {B, H, N}), view(t, erase, {B, H, W}), view(t, add, {B, H, W})});
  put(r[0], t, g_memory, {B, N, W});
  put(r[1], t, g_w, {B, H, N});
  put(r[2], t, g_erase, {B, H, W});
  put(r[3], t, g_add, {B, H, W});
  return cudaSuccess;
}

}  // namespace cuda
}  // namespace ntm_fast
