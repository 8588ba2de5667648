// Torch binding of the CUDA read (read.cu) for the CUDA key;
// built only by a CUDA build.
#include "binding.h"

namespace ntm_fast {
namespace {
using namespace cuda_binding;

at::Tensor read_fwd_cuda(const at::Tensor& memory_, const at::Tensor& w_) {
  const char* op = "ntm_fast::read_fwd";
  const Dims d = check_read_args(op, memory_, w_);
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto memory = memory_.contiguous(), w = w_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.W}, memory.options());
  dispatch(memory, [&](auto tv) {
    using T = decltype(tv);
    cuda::ReadFwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.memory = cptr<T>(memory);
    p.w = cptr<T>(w);
    p.out = mptr<T>(out);
    C10_CUDA_CHECK(cuda::read_fwd(p, stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> read_bwd_cuda(const at::Tensor& grad_,
                                                 const at::Tensor& memory_,
                                                 const at::Tensor& w_) {
  const char* op = "ntm_fast::read_bwd";
  const Dims d = check_read_args(op, memory_, w_);
  check_grad(op, grad_, {d.B, d.H, d.W}, memory_, "memory");
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), w = w_.contiguous();
  at::Tensor gM = new_output({d.B, d.N, d.W}, memory.options()),
             gw = new_output({d.B, d.H, d.N}, memory.options());
  dispatch(memory, [&](auto tv) {
    using T = decltype(tv);
    cuda::ReadBwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.grad = cptr<T>(grad);
    p.memory = cptr<T>(memory);
    p.w = cptr<T>(w);
    p.g_memory = mptr<T>(gM);
    p.g_w = mptr<T>(gw);
    C10_CUDA_CHECK(cuda::read_bwd(p, stream()));
  });
  return {gM, gw};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("read_fwd", &read_fwd_cuda);
  m.impl("read_bwd", &read_bwd_cuda);
}

}  // namespace ntm_fast
