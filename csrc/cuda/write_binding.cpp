// Torch binding of the CUDA write (write.cu) for the CUDA key;
// built only by a CUDA build.
#include "binding.h"

namespace ntm_fast {
namespace {
using namespace cuda_binding;

at::Tensor write_fwd_cuda(const at::Tensor& memory_, const at::Tensor& w_,
                          const at::Tensor& erase_, const at::Tensor& add_) {
  const char* op = "ntm_fast::write_fwd";
  const Dims d = check_write_args(op, memory_, w_, erase_, add_);
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto memory = memory_.contiguous(), w = w_.contiguous(), erase = erase_.contiguous(),
             add = add_.contiguous();
  at::Tensor out = new_output({d.B, d.N, d.W}, memory.options());
  dispatch(memory, [&](auto tv) {
    using T = decltype(tv);
    cuda::WriteFwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.memory = cptr<T>(memory);
    p.w = cptr<T>(w);
    p.erase = cptr<T>(erase);
    p.add = cptr<T>(add);
    p.out = mptr<T>(out);
    C10_CUDA_CHECK(cuda::write_fwd(p, stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> write_bwd_cuda(
    const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& w_,
    const at::Tensor& erase_, const at::Tensor& add_) {
  const char* op = "ntm_fast::write_bwd";
  const Dims d = check_write_args(op, memory_, w_, erase_, add_);
  check_grad(op, grad_, {d.B, d.N, d.W}, memory_, "memory");
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), w = w_.contiguous(),
             erase = erase_.contiguous(), add = add_.contiguous();
  const auto opts = memory.options();
  at::Tensor gM = new_output({d.B, d.N, d.W}, opts), gw = new_output({d.B, d.H, d.N}, opts),
             ge = new_output({d.B, d.H, d.W}, opts), ga = new_output({d.B, d.H, d.W}, opts);
  dispatch(memory, [&](auto tv) {
    using T = decltype(tv);
    cuda::WriteBwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.grad = cptr<T>(grad);
    p.memory = cptr<T>(memory);
    p.w = cptr<T>(w);
    p.erase = cptr<T>(erase);
    p.add = cptr<T>(add);
    p.g_memory = mptr<T>(gM);
    p.g_w = mptr<T>(gw);
    p.g_erase = mptr<T>(ge);
    p.g_add = mptr<T>(ga);
    C10_CUDA_CHECK(cuda::write_bwd(p, stream()));
  });
  return {gM, gw, ge, ga};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("write_fwd", &write_fwd_cuda);
  m.impl("write_bwd", &write_bwd_cuda);
}

}  // namespace ntm_fast
