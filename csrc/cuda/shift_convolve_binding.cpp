// Torch binding of the CUDA shift_convolve (shift_convolve.cu) for the CUDA key;
// built only by a CUDA build.
#include "binding.h"

namespace ntm_fast {
namespace {
using namespace cuda_binding;

at::Tensor shift_convolve_fwd_cuda(const at::Tensor& w_, const at::Tensor& shift_) {
  const char* op = "ntm_fast::shift_convolve_fwd";
  const Dims d = check_shift_convolve_args(op, w_, shift_);
  check_cuda(op, w_);
  const c10::cuda::CUDAGuard guard(w_.device());
  const auto w = w_.contiguous(), shift = shift_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, w.options());
  dispatch(w, [&](auto tv) {
    using T = decltype(tv);
    cuda::ShiftConvolveFwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.w = cptr<T>(w);
    p.shift = cptr<T>(shift);
    p.out = mptr<T>(out);
    C10_CUDA_CHECK(cuda::shift_convolve_fwd(p, stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> shift_convolve_bwd_cuda(const at::Tensor& grad_,
                                                           const at::Tensor& w_,
                                                           const at::Tensor& shift_) {
  const char* op = "ntm_fast::shift_convolve_bwd";
  const Dims d = check_shift_convolve_args(op, w_, shift_);
  check_grad(op, grad_, {d.B, d.H, d.N}, w_, "w");
  check_cuda(op, w_);
  const c10::cuda::CUDAGuard guard(w_.device());
  const auto grad = grad_.contiguous(), w = w_.contiguous(), shift = shift_.contiguous();
  const int64_t S = shift.size(2);
  at::Tensor gw = new_output({d.B, d.H, d.N}, w.options()),
             gs = new_output({d.B, d.H, S}, w.options());
  dispatch(w, [&](auto tv) {
    using T = decltype(tv);
    cuda::ShiftConvolveBwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.grad = cptr<T>(grad);
    p.w = cptr<T>(w);
    p.shift = cptr<T>(shift);
    p.g_w = mptr<T>(gw);
    p.g_shift = mptr<T>(gs);
    C10_CUDA_CHECK(cuda::shift_convolve_bwd(p, stream()));
  });
  return {gw, gs};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("shift_convolve_fwd", &shift_convolve_fwd_cuda);
  m.impl("shift_convolve_bwd", &shift_convolve_bwd_cuda);
}

}  // namespace ntm_fast
