// CPU binding of read (eq. 2). float32/float64 reads are batched matrix products (BLAS,
// like the reference's einsum); half types run a loop accumulating in float32.
#include <ATen/ops/bmm.h>

#include "op_common.h"

namespace ntm_fast {
namespace {
using namespace cpu;

bool is_blas_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

at::Tensor read_fwd_cpu(const at::Tensor& memory_, const at::Tensor& w_) {
  const Dims d = check_read_args("ntm_fast::read_fwd", memory_, w_);
  const auto memory = memory_.contiguous(), w = w_.contiguous();
  const int64_t H = d.H, N = d.N, W = d.W;
  at::Tensor out = new_output({d.B, H, W}, memory.options());
  if (is_blas_dtype(memory)) {  // a batched GEMV: BLAS, like the reference's einsum
    at::bmm_out(out, w, memory);
    return out;
  }
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::read_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *M = memory.const_data_ptr<T>(), *x = w.const_data_ptr<T>();
    T* o = out.mutable_data_ptr<T>();
    at::parallel_for(0, d.B * H, grain_for(N * W), [&](int64_t begin, int64_t end) {
      std::vector<A> acc(static_cast<size_t>(W));
      for (int64_t bh = begin; bh < end; ++bh) {
        const T* Mb = M + (bh / H) * N * W;
        const T* wr = x + bh * N;
        std::fill(acc.begin(), acc.end(), A(0));
        A* a = acc.data();
        for (int64_t i = 0; i < N; ++i) {
          const A c = static_cast<A>(wr[i]);
          const T* Mi = Mb + i * W;
          for (int64_t m = 0; m < W; ++m) a[m] += c * static_cast<A>(Mi[m]);
        }
        store_row(a, W, o + bh * W);
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> read_bwd_cpu(const at::Tensor& grad_,
                                                const at::Tensor& memory_, const at::Tensor& w_) {
  const char* op = "ntm_fast::read_bwd";
  const Dims d = check_read_args(op, memory_, w_);
  check_grad(op, grad_, {d.B, d.H, d.W}, memory_, "memory");
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), w = w_.contiguous();
  const int64_t H = d.H, N = d.N, W = d.W;
  at::Tensor g_memory = new_output({d.B, N, W}, memory.options()),
             g_w = new_output({d.B, H, N}, memory.options());
  if (is_blas_dtype(memory)) {  // dM = wᵀ r̄ and dw = r̄ Mᵀ, batched GEMMs
    at::bmm_out(g_memory, w.transpose(1, 2), grad);
    at::bmm_out(g_w, grad, memory.transpose(1, 2));
    return {g_memory, g_w};
  }
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::read_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *G = grad.const_data_ptr<T>(), *M = memory.const_data_ptr<T>(),
            *x = w.const_data_ptr<T>();
    T *gM = g_memory.mutable_data_ptr<T>(), *gw = g_w.mutable_data_ptr<T>();
    // Rows of one batch are independent (gM row i only sums over heads): parallel over (b, i).
    at::parallel_for(0, d.B * N, grain_for(2 * H * W), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>(W + H * W));
      A *acc = buf.data(), *rbar = acc + W;
      int64_t loaded = -1;
      for (int64_t bi = begin; bi < end; ++bi) {
        const int64_t b = bi / N, i = bi % N;
        if (b != loaded) {
          load_row(G + b * H * W, H * W, rbar);
          loaded = b;
        }
        const T* Mi = M + bi * W;
        for (int64_t h = 0; h < H; ++h) {
          const A c = static_cast<A>(x[(b * H + h) * N + i]);
          const A* rh = rbar + h * W;
          if (h == 0) {
            for (int64_t m = 0; m < W; ++m) acc[m] = c * rh[m];
          } else {
            for (int64_t m = 0; m < W; ++m) acc[m] += c * rh[m];
          }
          gw[(b * H + h) * N + i] = store_grad<T>(row_dot<T, A>(rh, Mi, W));
        }
        store_grad_row(acc, W, gM + bi * W);
      }
    });
  });
  return {g_memory, g_w};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) {
  m.impl("read_fwd", &read_fwd_cpu);
  m.impl("read_bwd", &read_bwd_cpu);
}

}  // namespace ntm_fast
