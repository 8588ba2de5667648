// CPU binding of shift_convolve (eq. 8), one pass per (batch, head) row.
#include "op_common.h"

namespace ntm_fast {
namespace {
using namespace cpu;

at::Tensor shift_convolve_fwd_cpu(const at::Tensor& w_, const at::Tensor& shift_) {
  const char* op = "ntm_fast::shift_convolve_fwd";
  const Dims d = check_shift_convolve_args(op, w_, shift_);
  const auto w = w_.contiguous(), shift = shift_.contiguous();
  const int64_t N = d.N, S = shift.size(2);
  at::Tensor out = new_output({d.B, d.H, N}, w.options());
  NTM_DISPATCH(w.scalar_type(), "ntm_fast::shift_convolve_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *x = w.const_data_ptr<T>(), *sh = shift.const_data_ptr<T>();
    T* o = out.mutable_data_ptr<T>();
    at::parallel_for(0, d.B * d.H, grain_for(N * S), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>(2 * N + S));
      A *in = buf.data(), *res = in + N, *s = res + N;
      for (int64_t bh = begin; bh < end; ++bh) {
        load_row(x + bh * N, N, in);
        load_row(sh + bh * S, S, s);
        shift_row_fwd(in, s, N, S, res);
        store_row(res, N, o + bh * N);
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> shift_convolve_bwd_cpu(const at::Tensor& grad_,
                                                          const at::Tensor& w_,
                                                          const at::Tensor& shift_) {
  const char* op = "ntm_fast::shift_convolve_bwd";
  const Dims d = check_shift_convolve_args(op, w_, shift_);
  check_grad(op, grad_, {d.B, d.H, d.N}, w_, "w");
  const auto grad = grad_.contiguous(), w = w_.contiguous(), shift = shift_.contiguous();
  const int64_t N = d.N, S = shift.size(2);
  at::Tensor g_w = new_output({d.B, d.H, N}, w.options()),
             g_s = new_output({d.B, d.H, S}, w.options());
  NTM_DISPATCH(w.scalar_type(), "ntm_fast::shift_convolve_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *G = grad.const_data_ptr<T>(), *x = w.const_data_ptr<T>(),
            *sh = shift.const_data_ptr<T>();
    T *gw = g_w.mutable_data_ptr<T>(), *gs = g_s.mutable_data_ptr<T>();
    at::parallel_for(0, d.B * d.H, grain_for(N * S), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>(3 * N + 2 * S));
      A *in = buf.data(), *go = in + N, *gin = go + N, *s = gin + N, *gsr = s + S;
      for (int64_t bh = begin; bh < end; ++bh) {
        load_row(x + bh * N, N, in);
        load_row(G + bh * N, N, go);
        load_row(sh + bh * S, S, s);
        shift_row_bwd(go, in, s, N, S, gin, gsr);
        store_grad_row(gin, N, gw + bh * N);
        store_grad_row(gsr, S, gs + bh * S);
      }
    });
  });
  return {g_w, g_s};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) {
  m.impl("shift_convolve_fwd", &shift_convolve_fwd_cpu);
  m.impl("shift_convolve_bwd", &shift_convolve_bwd_cpu);
}

}  // namespace ntm_fast
