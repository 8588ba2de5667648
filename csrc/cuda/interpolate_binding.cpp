// Torch binding of the CUDA interpolate (interpolate.cu) for the CUDA key;
// built only by a CUDA build.
#include "binding.h"

namespace ntm_fast {
namespace {
using namespace cuda_binding;

at::Tensor interpolate_fwd_cuda(const at::Tensor& wc_, const at::Tensor& wp_,
                                const at::Tensor& gate_) {
  const char* op = "ntm_fast::interpolate_fwd";
  const Dims d = check_interpolate_args(op, wc_, wp_, gate_);
  check_cuda(op, wc_);
  const c10::cuda::CUDAGuard guard(wc_.device());
  const auto wc = wc_.contiguous(), wp = wp_.contiguous(), gate = gate_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, wc.options());
  dispatch(wc, [&](auto tv) {
    using T = decltype(tv);
    cuda::InterpolateFwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.w_content = cptr<T>(wc);
    p.w_prev = cptr<T>(wp);
    p.gate = cptr<T>(gate);
    p.out = mptr<T>(out);
    C10_CUDA_CHECK(cuda::interpolate_fwd(p, stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_bwd_cuda(const at::Tensor& grad_,
                                                                    const at::Tensor& wc_,
                                                                    const at::Tensor& wp_,
                                                                    const at::Tensor& gate_) {
  const char* op = "ntm_fast::interpolate_bwd";
  const Dims d = check_interpolate_args(op, wc_, wp_, gate_);
  check_grad(op, grad_, {d.B, d.H, d.N}, wc_, "w_content");
  check_cuda(op, wc_);
  const c10::cuda::CUDAGuard guard(wc_.device());
  const auto grad = grad_.contiguous(), wc = wc_.contiguous(), wp = wp_.contiguous(),
             gate = gate_.contiguous();
  const auto opts = wc.options();
  at::Tensor gc = new_output({d.B, d.H, d.N}, opts), gp = new_output({d.B, d.H, d.N}, opts),
             gg = new_output({d.B, d.H}, opts);
  dispatch(wc, [&](auto tv) {
    using T = decltype(tv);
    cuda::InterpolateBwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.grad = cptr<T>(grad);
    p.w_content = cptr<T>(wc);
    p.w_prev = cptr<T>(wp);
    p.gate = cptr<T>(gate);
    p.g_content = mptr<T>(gc);
    p.g_prev = mptr<T>(gp);
    p.g_gate = mptr<T>(gg);
    C10_CUDA_CHECK(cuda::interpolate_bwd(p, stream()));
  });
  return {gc, gp, gg};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("interpolate_fwd", &interpolate_fwd_cuda);
  m.impl("interpolate_bwd", &interpolate_bwd_cuda);
}

}  // namespace ntm_fast
