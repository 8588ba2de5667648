// The memory-op launchers of csrc/cuda/launchers.h on the CPU (tools/cuda_emulation), for the
// element types the sequence drivers use (float, double): each calls the registered ntm_fast
// CPU op on views of the params' buffers and copies its results out, so the emulated drivers
// run the CPU op's memory math (the CUDA kernels are tested on their own by
// tests/ops/test_backend_ops.py on a GPU).
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/ops/from_blob.h>

#include <vector>

#include "cuda/launchers.h"

namespace ntm_fast {
namespace cuda {
namespace {

template <typename T>
at::Tensor view(const T* p, at::IntArrayRef sizes) {
  const auto dtype = c10::CppTypeToScalarType<T>::value;
  return at::from_blob(const_cast<T*>(p), sizes, at::TensorOptions().dtype(dtype));
}

std::vector<at::Tensor> call(const char* name, const std::vector<at::Tensor>& args) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  torch::jit::Stack stack(args.begin(), args.end());
  op.callBoxed(stack);
  std::vector<at::Tensor> out;
  for (const auto& v : stack) out.push_back(v.toTensor());
  return out;
}

template <typename T>
void put(const at::Tensor& src, T* dst, at::IntArrayRef sizes) {
  view(dst, sizes).copy_(src);
}

}  // namespace

template <typename T>
cudaError_t address_fwd(const AddressFwdParams<T>& p, cudaStream_t) {
  const int64_t B = p.B, H = p.H, N = p.N, W = p.W, S = p.S;
  const auto r = call("ntm_fast::address_fwd",
                      {view(p.memory, {B, N, W}), view(p.key, {B, H, W}), view(p.beta, {B, H}),
                       view(p.gate, {B, H}), view(p.shift, {B, H, S}), view(p.gamma, {B, H}),
                       view(p.w_prev, {B, H, N})});
  put(r[0], p.out, {B, H, N});
  return cudaSuccess;
}

template <typename T>
cudaError_t address_bwd(const AddressBwdParams<T>& p, cudaStream_t) {
  const int64_t B = p.B, H = p.H, N = p.N, W = p.W, S = p.S;
  const auto r = call("ntm_fast::address_bwd",
                      {view(p.grad, {B, H, N}), view(p.memory, {B, N, W}),
                       view(p.key, {B, H, W}), view(p.beta, {B, H}), view(p.gate, {B, H}),
                       view(p.shift, {B, H, S}), view(p.gamma, {B, H}),
                       view(p.w_prev, {B, H, N})});
  put(r[0], p.g_memory, {B, N, W});
  put(r[1], p.g_key, {B, H, W});
  put(r[2], p.g_beta, {B, H});
  put(r[3], p.g_gate, {B, H});
  put(r[4], p.g_shift, {B, H, S});
  put(r[5], p.g_gamma, {B, H});
  put(r[6], p.g_w_prev, {B, H, N});
  return cudaSuccess;
}

template <typename T>
cudaError_t read_fwd(const ReadFwdParams<T>& p, cudaStream_t) {
  const int64_t B = p.B, H = p.H, N = p.N, W = p.W;
  const auto r = call("ntm_fast::read_fwd", {view(p.memory, {B, N, W}), view(p.w, {B, H, N})});
  put(r[0], p.out, {B, H, W});
  return cudaSuccess;
}

template <typename T>
cudaError_t read_bwd(const ReadBwdParams<T>& p, cudaStream_t) {
  const int64_t B = p.B, H = p.H, N = p.N, W = p.W;
  const auto r = call("ntm_fast::read_bwd", {view(p.grad, {B, H, W}), view(p.memory, {B, N, W}),
                                             view(p.w, {B, H, N})});
  put(r[0], p.g_memory, {B, N, W});
  put(r[1], p.g_w, {B, H, N});
  return cudaSuccess;
}

template <typename T>
cudaError_t write_fwd(const WriteFwdParams<T>& p, cudaStream_t) {
  const int64_t B = p.B, H = p.H, N = p.N, W = p.W;
  const auto r = call("ntm_fast::write_fwd", {view(p.memory, {B, N, W}), view(p.w, {B, H, N}),
                                              view(p.erase, {B, H, W}), view(p.add, {B, H, W})});
  put(r[0], p.out, {B, N, W});
  return cudaSuccess;
}

template <typename T>
cudaError_t write_bwd(const WriteBwdParams<T>& p, cudaStream_t) {
  const int64_t B = p.B, H = p.H, N = p.N, W = p.W;
  const auto r = call("ntm_fast::write_bwd",
                      {view(p.grad, {B, N, W}), view(p.memory, {B, N, W}), view(p.w, {B, H, N}),
                       view(p.erase, {B, H, W}), view(p.add, {B, H, W})});
  put(r[0], p.g_memory, {B, N, W});
  put(r[1], p.g_w, {B, H, N});
  put(r[2], p.g_erase, {B, H, W});
  put(r[3], p.g_add, {B, H, W});
  return cudaSuccess;
}

#define NTM_EMULATED(fn, Params)                                    \
  template cudaError_t fn<float>(const Params<float>&, cudaStream_t); \
  template cudaError_t fn<double>(const Params<double>&, cudaStream_t)
NTM_EMULATED(address_fwd, AddressFwdParams);
NTM_EMULATED(address_bwd, AddressBwdParams);
NTM_EMULATED(read_fwd, ReadFwdParams);
NTM_EMULATED(read_bwd, ReadBwdParams);
NTM_EMULATED(write_fwd, WriteFwdParams);
NTM_EMULATED(write_bwd, WriteBwdParams);

}  // namespace cuda
}  // namespace ntm_fast
