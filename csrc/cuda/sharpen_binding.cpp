// Torch binding of the CUDA sharpen (sharpen.cu) for the CUDA key;
// built only by a CUDA build.
#include "binding.h"

namespace ntm_fast {
namespace {
using namespace cuda_binding;

at::Tensor sharpen_fwd_cuda(const at::Tensor& w_, const at::Tensor& gamma_) {
  const char* op = "ntm_fast::sharpen_fwd";
  const Dims d = check_sharpen_args(op, w_, gamma_);
  check_cuda(op, w_);
  const c10::cuda::CUDAGuard guard(w_.device());
  const auto w = w_.contiguous(), gamma = gamma_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, w.options());
  dispatch(w, [&](auto tv) {
    using T = decltype(tv);
    cuda::SharpenFwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.w = cptr<T>(w);
    p.gamma = cptr<T>(gamma);
    p.out = mptr<T>(out);
    C10_CUDA_CHECK(cuda::sharpen_fwd(p, stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sharpen_bwd_cuda(const at::Tensor& grad_, const at::Tensor& w_,
                                                    const at::Tensor& gamma_) {
  const char* op = "ntm_fast::sharpen_bwd";
  const Dims d = check_sharpen_args(op, w_, gamma_);
  check_grad(op, grad_, {d.B, d.H, d.N}, w_, "w");
  check_cuda(op, w_);
  const c10::cuda::CUDAGuard guard(w_.device());
  const auto grad = grad_.contiguous(), w = w_.contiguous(), gamma = gamma_.contiguous();
  at::Tensor gw = new_output({d.B, d.H, d.N}, w.options()),
             gy = new_output({d.B, d.H}, w.options());
  dispatch(w, [&](auto tv) {
    using T = decltype(tv);
    at::Tensor ws = workspace<T>(cuda::SharpenBwdWorkspace{d.N}, d.B, d.H, w);
    cuda::SharpenBwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.grad = cptr<T>(grad);
    p.w = cptr<T>(w);
    p.gamma = cptr<T>(gamma);
    p.g_w = mptr<T>(gw);
    p.g_gamma = mptr<T>(gy);
    p.workspace = ws_ptr<T>(ws);
    C10_CUDA_CHECK(cuda::sharpen_bwd(p, stream()));
  });
  return {gw, gy};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("sharpen_fwd", &sharpen_fwd_cuda);
  m.impl("sharpen_bwd", &sharpen_bwd_cuda);
}

}  // namespace ntm_fast
