// CPU row-level building blocks of the memory ops: one (batch, head) row of content
// addressing, shift, sharpening and their backwards, row loads/stores with gradient saturation.
// T: storage type, A: accumulation type. The per-element math is csrc/ntm_math.h (shared with
// CUDA); the kernels that combine these rows are csrc/cpu/memory_kernels.h.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../ntm_math.h"
#include "vec.h"

namespace ntm_fast {
namespace NTM_CPU_NS {

// Max |x_m| over a row (NaN entries may be skipped: a NaN row's norm is NaN anyway).
template <typename A>
A absmax(const A* x, int64_t W) {
  A mx = 0;
  for (int64_t m = 0; m < W; ++m) mx = std::max(mx, std::abs(x[m]));
  return mx;
}

// The scale-safe norm of x (docs/math.md#scale-safe-norms): |x| from the plain squared norm
// when it is in range (inverse scale 1, x untouched), else x is rescaled in place by an exact
// power of two (in `dst`, which may be x) and the norm is that of the rescaled vector.
// Returns {norm, inverse scale}; `*out` points to the vector the dots must use.
template <typename A>
void scaled_norm(const A* x, int64_t W, A* dst, const A** out, A* norm, A* inv) {
  const A sq = vdot(x, x, W);
  *out = x;
  *inv = A(1);
  if (norm_sq_plain(sq)) {
    *norm = ntm_sqrt(sq);
    return;
  }
  const A s = inverse_pow2_scale(absmax(x, W));
  if (s != A(1)) {
    for (int64_t m = 0; m < W; ++m) dst[m] = x[m] * s;
    *out = dst;
    *inv = s;
  }
  *norm = ntm_sqrt(vdot(*out, *out, W));
}

// Content addressing, the part shared by all heads of one batch (eq. 6), scale-safe: loads the
// keys (H x W) into kacc, rescaled where needed (kn[h] = |k~_h|, kinv[h] = its inverse scale),
// and for every row rn[i] = |M~_i|, rinv[i] and dot[h*N + i] = k~_h . M~_i. Each dot runs in 4
// lanes over the width (a fixed order).
template <typename T, typename A>
void content_batch_dots(const T* M, const T* key, int64_t H, int64_t N, int64_t W, A* kacc,
                        A* kn, A* kinv, A* dot, A* rn, A* rinv, A* mrow) {
  for (int64_t h = 0; h < H; ++h) {
    A* kh = kacc + h * W;
    for (int64_t m = 0; m < W; ++m) kh[m] = static_cast<A>(key[h * W + m]);
    const A* unused;
    scaled_norm(kh, W, kh, &unused, kn + h, kinv + h);
  }
  for (int64_t i = 0; i < N; ++i) {
    const A* Mi;
    if constexpr (std::is_same_v<T, A>) {
      Mi = M + i * W;
    } else {
      for (int64_t m = 0; m < W; ++m) mrow[m] = static_cast<A>(M[i * W + m]);
      Mi = mrow;
    }
    scaled_norm(Mi, W, mrow, &Mi, rn + i, rinv + i);
    for (int64_t h = 0; h < H; ++h) dot[h * N + i] = vdot(kacc + h * W, Mi, W);
  }
}

// Per-head view of the cosine's inputs: dots and row norms/scales of one head, |k~|, s_k^-1.
template <typename A>
struct CosineRow {
  const A* dot;
  const A* rn;
  const A* rinv;
  A kn, kinv;
  A K(int64_t i) const { return dot[i] / cosine_denominator(kn, rn[i], kinv, rinv[i]); }
};

// Content weighting of one head (eq. 5) from its dots, the row norms and |k|: the stable
// softmax of beta K_i, written to wc.
template <typename A>
void content_row_softmax(const CosineRow<A>& c, A beta, int64_t N, A* __restrict__ wc) {
  for (int64_t i = 0; i < N; ++i) wc[i] = beta * c.K(i);
  const A zmax = vmax(wc, N);
  for (int64_t i = 0; i < N; ++i) wc[i] -= zmax;
  exp_row(wc, A(1), N);
  const A inv = A(1) / vsum(wc, N);
  for (int64_t i = 0; i < N; ++i) wc[i] *= inv;
}

// Content addressing backward through the softmax: from dL/dwc (gwc) to dL/dK (written into
// gwc), returns dL/dbeta. `tmp` is N scratch.
template <typename A>
A content_row_softmax_bwd(const A* __restrict__ wc, const CosineRow<A>& c, A beta, int64_t N,
                          A* __restrict__ gwc, A* __restrict__ tmp) {
  const A wdg = vdot8(wc, gwc, N);
  for (int64_t i = 0; i < N; ++i) {
    const A dz = softmax_grad(wc[i], gwc[i], wdg);
    tmp[i] = dz * c.K(i);
    gwc[i] = beta * dz;  // dL/dK_i
  }
  return vsum(tmp, N);
}

// Cosine backward coefficients for one head (scale-safe, docs/math-backward.md#cosine-backward):
// with dK = dL/dK and P_i, Q_i from cosine_grad_scale,
//   dL/dk   = sum_i c_k[i] M~_i - coef_key * k~,    c_k[i] = dK_i P_i
//   dL/dM_i = c_q[i] k~ - c_m[i] M~_i,              c_q[i] = dK_i Q_i,
//             c_m[i] = dK_i Q_i K_i |k~| / |M~_i|
// Overwrites dK with c_k, writes c_q and c_m, returns coef_key = sum_i dK_i P_i K_i |M~_i|/|k~|.
// `tmp` is N scratch.
template <typename A>
A cosine_row_coefs(const CosineRow<A>& c, int64_t N, A* __restrict__ dK_to_ck,
                   A* __restrict__ cq, A* __restrict__ cm, A* __restrict__ tmp) {
  for (int64_t i = 0; i < N; ++i) {
    const A K = c.K(i), dK = dK_to_ck[i];
    const A P = dK * cosine_grad_scale(c.kn, c.rn[i], c.kinv, c.rinv[i]);
    const A Q = dK * cosine_grad_scale(c.kn, c.rn[i], c.rinv[i], c.kinv);
    tmp[i] = cosine_self_coef(K, c.rn[i], c.kn, P);
    cm[i] = cosine_self_coef(K, c.kn, c.rn[i], Q);
    cq[i] = Q;
    dK_to_ck[i] = P;
  }
  return vsum(tmp, N);
}

// Normalised shift offset: output i reads source (i + off) mod N for shift index j.
inline int64_t shift_offset(int64_t j, int64_t k, int64_t N) {
  int64_t off = (k - j) % N;
  return off < 0 ? off + N : off;
}

// Circular shift forward (eq. 8): out_i = sum_j s_j in_{(i - (j - k)) mod N}.
template <typename A>
void shift_row_fwd(const A* __restrict__ in, const A* s, int64_t N, int64_t S,
                   A* __restrict__ out) {
  const int64_t k = (S - 1) / 2;
  std::fill(out, out + N, A(0));
  for (int64_t j = 0; j < S; ++j) {
    const A sj = s[j];
    const int64_t off = shift_offset(j, k, N);
    const int64_t split = N - off;
    for (int64_t i = 0; i < split; ++i) out[i] += sj * in[i + off];
    for (int64_t i = split; i < N; ++i) out[i] += sj * in[i + off - N];
  }
}

// Circular shift backward: gin_{src} += s_j gout_i, gs_j = sum_i gout_i in_{src(i, j)}.
template <typename A>
void shift_row_bwd(const A* __restrict__ gout, const A* __restrict__ in, const A* s, int64_t N,
                   int64_t S, A* __restrict__ gin, A* gs) {
  const int64_t k = (S - 1) / 2;
  std::fill(gin, gin + N, A(0));
  for (int64_t j = 0; j < S; ++j) {
    const A sj = s[j];
    const int64_t off = shift_offset(j, k, N);
    const int64_t split = N - off;
    for (int64_t i = 0; i < split; ++i) gin[i + off] += sj * gout[i];
    for (int64_t i = split; i < N; ++i) gin[i + off - N] += sj * gout[i];
    gs[j] = vdot8(gout, in + off, split) + vdot8(gout + split, in, N - split);
  }
}

// Sharpening forward (eq. 9), scale-free: r = in / max(in), out = r^g / max(sum r^g, tiny).
// r^g is exp(g log r) (vectorised); r = 0 takes pow(0, g) as torch (1 for g = 0), a negative or
// NaN r gives NaN. Writes lr = log r (-inf where r = 0, for the backward) and out; returns the
// row maximum used.
template <typename A>
A sharpen_row_fwd(const A* __restrict__ in, A gamma, int64_t N, A* __restrict__ lr,
                  A* __restrict__ out, A* sum_out) {
  const A mx = sharpen_scale(vmax(in, N));
  const A p0 = sharpen_power(A(0), gamma);
  const A ninf = -std::numeric_limits<A>::infinity();
  for (int64_t i = 0; i < N; ++i) lr[i] = in[i] / mx;
  if (gamma == A(1)) {  // r^1 = r exactly, as torch.pow (no exp/log rounding)
    std::copy(lr, lr + N, out);
    log_row(lr, N);
  } else {
    log_row(lr, N);
    std::copy(lr, lr + N, out);
    exp_row(out, gamma, N);  // exp(gamma * -inf) = 0 = pow(0, gamma) for gamma > 0
    if (!(gamma > A(0))) {
      for (int64_t i = 0; i < N; ++i) out[i] = lr[i] == ninf ? p0 : out[i];
    }
  }
  const A sum = vsum(out, N);
  const A inv = A(1) / std::max(sum, sharpen_tiny<A>());
  for (int64_t i = 0; i < N; ++i) out[i] *= inv;
  *sum_out = sum;
  return mx;
}

// Sharpening backward: from dL/dw (gout) and the forward's lr = log r, w = out, sum and max to
// dL/din (written to gin, may alias gout) and dL/dgamma (returned). The max is a detached
// rescale. d(r^g)/dr = g r^(g-1) = g exp((g-1) log r) (pow(0, g-1) at r = 0); d(r^g)/dg =
// r^g log r (0 at r = 0). `tmp` is 2N scratch.
template <typename A>
A sharpen_row_bwd(const A* gout, const A* __restrict__ lr, const A* __restrict__ w, A sum, A mx,
                  A gamma, int64_t N, A* gin, A* __restrict__ tmp) {
  const A Sc = std::max(sum, sharpen_tiny<A>());
  const A wdg = sum >= sharpen_tiny<A>() ? vdot8(w, gout, N) : A(0);
  const A inv_S = A(1) / Sc;
  const A ninf = -std::numeric_limits<A>::infinity();
  const A pg0 = sharpen_power_grad(A(0), gamma);
  const A gm1 = gamma - A(1);
  if (gamma == A(1)) {  // d(r^1)/dr = 1 exactly
    for (int64_t i = 0; i < N; ++i) {
      const A l = lr[i];
      const A gp = (gout[i] - wdg) * inv_S;
      tmp[i] = l == ninf ? A(0) : gp * ((w[i] * Sc) * l);
      gin[i] = gp / mx;
    }
    return vsum(tmp, N);
  }
  // gin first holds r^(gamma-1) = exp((gamma-1) log r) (0 = pow(0, gamma-1) at r = 0 when
  // gamma > 1). gin may alias gout: read gout first.
  for (int64_t i = 0; i < N; ++i) {
    const A l = lr[i];
    const A gp = (gout[i] - wdg) * inv_S;  // dL/dp_i, p_i = r_i^gamma
    tmp[i] = l == ninf ? A(0) : gp * ((w[i] * Sc) * l);
    gin[i] = gp;
  }
  A* pw = tmp + N;
  std::copy(lr, lr + N, pw);
  exp_row(pw, gm1, N);
  for (int64_t i = 0; i < N; ++i) {
    const A pg = lr[i] == ninf ? pg0 : gamma * pw[i];
    gin[i] = gin[i] * pg / mx;
  }
  return vsum(tmp, N);
}

template <typename T, typename A>
void load_row(const T* src, int64_t n, A* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<A>(src[i]);
}

template <typename T, typename A>
void store_row(const A* src, int64_t n, T* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
}

// The storage kind of T for saturate_grad (csrc/ntm_math.h).
template <typename T>
constexpr Store store_kind() {
  if constexpr (std::is_same_v<T, c10::Half>) {
    return Store::Float16;
  } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
    return Store::BFloat16;
  } else {
    return Store::Wide;
  }
}

// Every gradient is stored through these: half types saturate at +-finfo(T).max (no inf).
template <typename T, typename A>
T store_grad(A x) {
  return static_cast<T>(saturate_grad<store_kind<T>()>(x));
}

template <typename T, typename A>
void store_grad_row(const A* src, int64_t n, T* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = store_grad<T>(src[i]);
}

// Memory and key gradients of content addressing for one batch: given per-head ck, cq, cm (N
// each, from cosine_row_coefs) and coef_key, writes dL/dM (N, W) summed over heads in head
// order and dL/dk (H, W). `kacc` holds the rescaled keys k~ and `rinv` the rows' inverse
// scales (from content_batch_dots), `gkacc` is H*W scratch, `gmacc` W scratch.
template <typename T, typename A>
void cosine_batch_grads(const T* M, const A* rinv, const A* kacc, const A* ck, const A* cq,
                        const A* cm, const A* coef_key, int64_t H, int64_t N, int64_t W, T* gM,
                        T* gk, A* gkacc, A* gmacc) {
  std::fill(gkacc, gkacc + H * W, A(0));
  for (int64_t i = 0; i < N; ++i) {
    const T* Mi = M + i * W;
    const A ri = rinv[i];
    std::fill(gmacc, gmacc + W, A(0));
    for (int64_t h = 0; h < H; ++h) {
      const A c1 = ck[h * N + i], cq1 = cq[h * N + i];
      const A c2 = cm[h * N + i];
      const A* kh = kacc + h * W;
      A* gkh = gkacc + h * W;
      for (int64_t m = 0; m < W; ++m) {
        const A x = static_cast<A>(Mi[m]) * ri;  // M~_i (exact: ri is a power of two)
        gmacc[m] += cq1 * kh[m] - c2 * x;
        gkh[m] += c1 * x;
      }
    }
    store_grad_row(gmacc, W, gM + i * W);
  }
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t m = 0; m < W; ++m) {
      gk[h * W + m] = store_grad<T>(gkacc[h * W + m] - coef_key[h] * kacc[h * W + m]);
    }
  }
}

}  // namespace NTM_CPU_NS
}  // namespace ntm_fast
