// CPU binding of content_address (eqs. 5-6): the row helpers of rows.h per batch (one task
// per batch, so the memory gradient sums over heads in a fixed order).
#include "op_common.h"

namespace ntm_fast {
namespace {
using namespace cpu;

at::Tensor content_address_fwd_cpu(const at::Tensor& memory_, const at::Tensor& key_,
                                   const at::Tensor& beta_) {
  const Dims d = check_content_address_args("ntm_fast::content_address_fwd", memory_, key_, beta_);
  const auto memory = memory_.contiguous(), key = key_.contiguous(), beta = beta_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, memory.options());
  const int64_t H = d.H, N = d.N, W = d.W;
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::content_address_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *M = memory.const_data_ptr<T>(), *K = key.const_data_ptr<T>(),
            *be = beta.const_data_ptr<T>();
    T* o = out.mutable_data_ptr<T>();
    at::parallel_for(0, d.B, grain_for(H * N * W), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>((H + 3) * N + H * W + 2 * H + W));
      A *dot = buf.data(), *rn = dot + H * N, *rinv = rn + N, *wc = rinv + N, *kacc = wc + N,
        *kn = kacc + H * W, *kinv = kn + H, *mrow = kinv + H;
      for (int64_t b = begin; b < end; ++b) {
        content_batch_dots<T, A>(M + b * N * W, K + b * H * W, H, N, W, kacc, kn, kinv, dot, rn,
                                 rinv, mrow);
        for (int64_t h = 0; h < H; ++h) {
          const CosineRow<A> cr{dot + h * N, rn, rinv, kn[h], kinv[h]};
          content_row_softmax(cr, static_cast<A>(be[b * H + h]), N, wc);
          store_row(wc, N, o + (b * H + h) * N);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> content_address_bwd_cpu(const at::Tensor& grad_,
                                                                       const at::Tensor& memory_,
                                                                       const at::Tensor& key_,
                                                                       const at::Tensor& beta_) {
  const char* op = "ntm_fast::content_address_bwd";
  const Dims d = check_content_address_args(op, memory_, key_, beta_);
  check_grad(op, grad_, {d.B, d.H, d.N}, memory_, "memory");
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), key = key_.contiguous(),
             beta = beta_.contiguous();
  const auto opts = memory.options();
  const int64_t B = d.B, H = d.H, N = d.N, W = d.W;
  at::Tensor g_memory = new_output({B, N, W}, opts), g_key = new_output({B, H, W}, opts),
             g_beta = new_output({B, H}, opts);
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::content_address_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *G = grad.const_data_ptr<T>(), *M = memory.const_data_ptr<T>(),
            *K = key.const_data_ptr<T>(), *be = beta.const_data_ptr<T>();
    T *gM = g_memory.mutable_data_ptr<T>(), *gK = g_key.mutable_data_ptr<T>(),
      *gB = g_beta.mutable_data_ptr<T>();
    at::parallel_for(0, B, grain_for(H * N * 2 * W), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>(5 * N + 4 * H * N + 3 * H + 2 * H * W + 2 * W));
      A *dot = buf.data(), *rn = dot + H * N, *rinv = rn + N, *wc = rinv + N, *tmp = wc + N,
        *ck = tmp + N, *cq = ck + H * N, *cm = cq + H * N, *coef_key = cm + H * N,
        *kn = coef_key + H, *kinv = kn + H, *kacc = kinv + H, *gkacc = kacc + H * W,
        *gmacc = gkacc + H * W, *mrow = gmacc + W, *sc = mrow + W;
      for (int64_t b = begin; b < end; ++b) {
        const T* Mb = M + b * N * W;
        content_batch_dots<T, A>(Mb, K + b * H * W, H, N, W, kacc, kn, kinv, dot, rn, rinv,
                                 mrow);
        for (int64_t h = 0; h < H; ++h) {
          const int64_t bh = b * H + h;
          const A beta_v = static_cast<A>(be[bh]);
          const CosineRow<A> cr{dot + h * N, rn, rinv, kn[h], kinv[h]};
          content_row_softmax(cr, beta_v, N, wc);
          load_row(G + bh * N, N, tmp);
          gB[bh] = store_grad<T>(content_row_softmax_bwd(wc, cr, beta_v, N, tmp, sc));
          coef_key[h] = cosine_row_coefs(cr, N, tmp, cq + h * N, cm + h * N, sc);
          std::copy(tmp, tmp + N, ck + h * N);
        }
        cosine_batch_grads<T, A>(Mb, rinv, kacc, ck, cq, cm, coef_key, H, N, W, gM + b * N * W,
                                 gK + b * H * W, gkacc, gmacc);
      }
    });
  });
  return {g_memory, g_key, g_beta};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) {
  m.impl("content_address_fwd", &content_address_fwd_cpu);
  m.impl("content_address_bwd", &content_address_bwd_cpu);
}

}  // namespace ntm_fast
