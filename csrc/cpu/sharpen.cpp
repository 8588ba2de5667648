// CPU binding of sharpen (eq. 9), one pass per (batch, head) row.
#include "op_common.h"

namespace ntm_fast {
namespace {
using namespace cpu;

at::Tensor sharpen_fwd_cpu(const at::Tensor& w_, const at::Tensor& gamma_) {
  const char* op = "ntm_fast::sharpen_fwd";
  const Dims d = check_sharpen_args(op, w_, gamma_);
  const auto w = w_.contiguous(), gamma = gamma_.contiguous();
  const int64_t N = d.N;
  at::Tensor out = new_output({d.B, d.H, N}, w.options());
  NTM_DISPATCH(w.scalar_type(), "ntm_fast::sharpen_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *x = w.const_data_ptr<T>(), *gm = gamma.const_data_ptr<T>();
    T* o = out.mutable_data_ptr<T>();
    at::parallel_for(0, d.B * d.H, grain_for(4 * N), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>(3 * N));
      A *in = buf.data(), *r = in + N, *res = r + N;
      for (int64_t bh = begin; bh < end; ++bh) {
        load_row(x + bh * N, N, in);
        A sum;
        sharpen_row_fwd(in, static_cast<A>(gm[bh]), N, r, res, &sum);
        store_row(res, N, o + bh * N);
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sharpen_bwd_cpu(const at::Tensor& grad_, const at::Tensor& w_,
                                                   const at::Tensor& gamma_) {
  const char* op = "ntm_fast::sharpen_bwd";
  const Dims d = check_sharpen_args(op, w_, gamma_);
  check_grad(op, grad_, {d.B, d.H, d.N}, w_, "w");
  const auto grad = grad_.contiguous(), w = w_.contiguous(), gamma = gamma_.contiguous();
  const int64_t N = d.N;
  at::Tensor g_w = new_output({d.B, d.H, N}, w.options()),
             g_gamma = new_output({d.B, d.H}, w.options());
  NTM_DISPATCH(w.scalar_type(), "ntm_fast::sharpen_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *G = grad.const_data_ptr<T>(), *x = w.const_data_ptr<T>(),
            *gm = gamma.const_data_ptr<T>();
    T *gw = g_w.mutable_data_ptr<T>(), *gy = g_gamma.mutable_data_ptr<T>();
    at::parallel_for(0, d.B * d.H, grain_for(6 * N), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>(6 * N));
      A *in = buf.data(), *r = in + N, *res = r + N, *go = res + N, *tmp = go + N;
      for (int64_t bh = begin; bh < end; ++bh) {
        const A gamma_v = static_cast<A>(gm[bh]);
        load_row(x + bh * N, N, in);
        A sum;
        const A mx = sharpen_row_fwd(in, gamma_v, N, r, res, &sum);
        load_row(G + bh * N, N, go);
        gy[bh] = store_grad<T>(sharpen_row_bwd(go, r, res, sum, mx, gamma_v, N, go, tmp));
        store_grad_row(go, N, gw + bh * N);
      }
    });
  });
  return {g_w, g_gamma};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) {
  m.impl("sharpen_fwd", &sharpen_fwd_cpu);
  m.impl("sharpen_bwd", &sharpen_bwd_cpu);
}

}  // namespace ntm_fast
