// CPU binding of interpolate (eq. 7), one pass per (batch, head) row.
#include "op_common.h"

namespace ntm_fast {
namespace {
using namespace cpu;

at::Tensor interpolate_fwd_cpu(const at::Tensor& wc_, const at::Tensor& wp_,
                               const at::Tensor& gate_) {
  const char* op = "ntm_fast::interpolate_fwd";
  const Dims d = check_interpolate_args(op, wc_, wp_, gate_);
  const auto wc = wc_.contiguous(), wp = wp_.contiguous(), gate = gate_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, wc.options());
  const int64_t N = d.N;
  NTM_DISPATCH(wc.scalar_type(), "ntm_fast::interpolate_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *c = wc.const_data_ptr<T>(), *p = wp.const_data_ptr<T>(),
            *g = gate.const_data_ptr<T>();
    T* o = out.mutable_data_ptr<T>();
    at::parallel_for(0, d.B * d.H, grain_for(N), [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; ++bh) {
        const A gv = static_cast<A>(g[bh]);
        const T *cr = c + bh * N, *pr = p + bh * N;
        T* orow = o + bh * N;
        for (int64_t i = 0; i < N; ++i) {
          orow[i] = static_cast<T>(interpolate(static_cast<A>(cr[i]), static_cast<A>(pr[i]), gv));
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_bwd_cpu(const at::Tensor& grad_,
                                                                   const at::Tensor& wc_,
                                                                   const at::Tensor& wp_,
                                                                   const at::Tensor& gate_) {
  const char* op = "ntm_fast::interpolate_bwd";
  const Dims d = check_interpolate_args(op, wc_, wp_, gate_);
  check_grad(op, grad_, {d.B, d.H, d.N}, wc_, "w_content");
  const auto grad = grad_.contiguous(), wc = wc_.contiguous(), wp = wp_.contiguous(),
             gate = gate_.contiguous();
  const auto opts = wc.options();
  at::Tensor g_wc = new_output({d.B, d.H, d.N}, opts), g_wp = new_output({d.B, d.H, d.N}, opts),
             g_gate = new_output({d.B, d.H}, opts);
  const int64_t N = d.N;
  NTM_DISPATCH(wc.scalar_type(), "ntm_fast::interpolate_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *G = grad.const_data_ptr<T>(), *c = wc.const_data_ptr<T>(),
            *p = wp.const_data_ptr<T>(), *g = gate.const_data_ptr<T>();
    T *gc = g_wc.mutable_data_ptr<T>(), *gp = g_wp.mutable_data_ptr<T>(),
      *gg = g_gate.mutable_data_ptr<T>();
    at::parallel_for(0, d.B * d.H, grain_for(N), [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; ++bh) {
        const A gv = static_cast<A>(g[bh]);
        A acc = 0;
        for (int64_t i = bh * N; i < (bh + 1) * N; ++i) {
          const A go = static_cast<A>(G[i]);
          acc += (static_cast<A>(c[i]) - static_cast<A>(p[i])) * go;
          gc[i] = store_grad<T>(gv * go);
          gp[i] = store_grad<T>((A(1) - gv) * go);
        }
        gg[bh] = store_grad<T>(acc);
      }
    });
  });
  return {g_wc, g_wp, g_gate};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) {
  m.impl("interpolate_fwd", &interpolate_fwd_cpu);
  m.impl("interpolate_bwd", &interpolate_bwd_cpu);
}

}  // namespace ntm_fast
