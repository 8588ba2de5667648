// CPU bindings of the single stages of addressing: content_address, interpolate,
// shift_convolve, sharpen (forward and backward). One pass per (batch, head) row in forward,
// per batch in backwards that sum over heads (fixed order, deterministic).
#include "op_common.h"

namespace ntm_fast {
namespace {
using namespace cpu;

at::Tensor content_address_fwd_cpu(const at::Tensor& memory_, const at::Tensor& key_,
                                   const at::Tensor& beta_) {
  const Dims d = check_content("ntm_fast::content_address_fwd", memory_, key_, beta_);
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
  const Dims d = check_content(op, memory_, key_, beta_);
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

at::Tensor shift_convolve_fwd_cpu(const at::Tensor& w_, const at::Tensor& shift_) {
  const char* op = "ntm_fast::shift_convolve_fwd";
  const Dims d = check_shift_args(op, w_, shift_);
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
  const Dims d = check_shift_args(op, w_, shift_);
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
  m.impl("content_address_fwd", &content_address_fwd_cpu);
  m.impl("content_address_bwd", &content_address_bwd_cpu);
  m.impl("interpolate_fwd", &interpolate_fwd_cpu);
  m.impl("interpolate_bwd", &interpolate_bwd_cpu);
  m.impl("shift_convolve_fwd", &shift_convolve_fwd_cpu);
  m.impl("shift_convolve_bwd", &shift_convolve_bwd_cpu);
  m.impl("sharpen_fwd", &sharpen_fwd_cpu);
  m.impl("sharpen_bwd", &sharpen_bwd_cpu);
}

}  // namespace ntm_fast
