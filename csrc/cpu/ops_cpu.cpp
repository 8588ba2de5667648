// CPU implementation of the ntm_fast ops.
//
// Layout: every input is made contiguous once, then each op runs one pass per (batch, head)
// (forward) or per batch (backward, so that gradients summed over heads or rows accumulate in a
// fixed order: deterministic). Reductions and intermediates use the accumulation type A
// (float for float/half/bfloat16, double for double); scratch is allocated once per parallel
// chunk, never per element. Inner loops run over contiguous memory so the compiler vectorises
// them. The per-element math lives in csrc/ntm_math.h, shared with the CUDA kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../checks.h"
#include "../common.h"
#include "../ntm_math.h"

namespace ntm_fast {
namespace {

// Work (in inner-loop iterations) below which a parallel_for runs on the calling thread:
// the per-step ops on small shapes must not pay for waking the thread pool.
constexpr int64_t kGrainWork = 1 << 15;

int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kGrainWork / std::max<int64_t>(1, work_per_item));
}

template <typename A>
std::vector<A> scratch(int64_t n) {
  return std::vector<A>(static_cast<size_t>(n));
}

// ============================ row-level building blocks ======================================
// One (batch, head) row. T: storage type, A: accumulation type.

// Deterministic sums of independent terms (write_bwd's dL/dw): kLanes interleaved partial
// sums (lane l takes the terms m = l mod kLanes), added in a fixed tree at the end: a fixed
// order for any thread count, and independent chains the CPU can overlap.
constexpr int kLanes = 8;

template <typename A>
inline A lane_total(const A* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// Returns sum_m a[m] * x[m]; with sq non-null also writes sum_m x[m]^2. Plain running sums:
// for W ~ 20 they measured faster than interleaved lanes (the loop is latency-bound either
// way and the lanes' remainder handling costs more than it saves).
template <typename T, typename A>
inline A row_dot(const A* a, const T* x, int64_t W, A* sq) {
  A u = 0;
  if (sq) {
    A q = 0;
    for (int64_t m = 0; m < W; ++m) {
      const A xv = static_cast<A>(x[m]);
      u += a[m] * xv;
      q += xv * xv;
    }
    *sq = q;
  } else {
    for (int64_t m = 0; m < W; ++m) u += a[m] * static_cast<A>(x[m]);
  }
  return u;
}

// Content addressing, the part shared by all heads of one batch (eq. 6): one sweep over the
// memory computes rn_i = |M_i| once and dot[h*N + i] = k_h.M_i for every head. Loads the keys
// (H x W) into kacc and writes kn[h] = |k_h|.
template <typename T, typename A>
void content_batch_dots(const T* M, const T* key, int64_t H, int64_t N, int64_t W, A* kacc,
                        A* kn, A* dot, A* rn) {
  for (int64_t h = 0; h < H; ++h) {
    A* kh = kacc + h * W;
    for (int64_t m = 0; m < W; ++m) kh[m] = static_cast<A>(key[h * W + m]);
    kn[h] = ntm_sqrt(row_dot(kh, key + h * W, W, static_cast<A*>(nullptr)));
  }
  for (int64_t i = 0; i < N; ++i) {
    const T* Mi = M + i * W;
    A r2;
    dot[i] = row_dot(kacc, Mi, W, &r2);
    rn[i] = ntm_sqrt(r2);
    for (int64_t h = 1; h < H; ++h) {
      dot[h * N + i] = row_dot(kacc + h * W, Mi, W, static_cast<A*>(nullptr));
    }
  }
}

// Content weighting of one head (eq. 5) from its dots, the row norms and |k|: the stable
// softmax of beta K_i, K_i = dot_i / (|k| |M_i| + eps), written to wc.
template <typename A>
void content_row_softmax(const A* dot, const A* rn, A kn, A beta, int64_t N, A* wc) {
  A zmax = -std::numeric_limits<A>::infinity();
  for (int64_t i = 0; i < N; ++i) {
    const A z = beta * (dot[i] / cosine_denominator(kn, rn[i]));
    wc[i] = z;
    zmax = std::max(zmax, z);
  }
  A sum = 0;
  for (int64_t i = 0; i < N; ++i) {
    const A e = stable_exp(wc[i], zmax);
    wc[i] = e;
    sum += e;
  }
  const A inv = A(1) / sum;
  for (int64_t i = 0; i < N; ++i) wc[i] *= inv;
}

// Content addressing backward through the softmax: from dL/dwc (gwc) to dL/dK (written into
// gwc), returns dL/dbeta.
template <typename A>
A content_row_softmax_bwd(const A* wc, const A* dot, const A* rn, A kn, A beta, int64_t N,
                          A* gwc) {
  A wdg = 0;
  for (int64_t i = 0; i < N; ++i) wdg += wc[i] * gwc[i];
  A gbeta = 0;
  for (int64_t i = 0; i < N; ++i) {
    const A dz = softmax_grad(wc[i], gwc[i], wdg);
    const A K = dot[i] / cosine_denominator(kn, rn[i]);
    gbeta += dz * K;
    gwc[i] = beta * dz;  // dL/dK_i
  }
  return gbeta;
}

// Cosine backward coefficients for one head: with dK = dL/dK,
//   dL/dk   = sum_i c_k[i] M_i - coef_key * k,      c_k[i] = dK_i / D_i
//   dL/dM_i = c_k[i] k - c_m[i] M_i,                c_m[i] = dK_i u_i |k| / (|M_i| D_i^2)
// Overwrites dK with c_k, writes c_m, returns coef_key = sum_i dK_i u_i |M_i| / (|k| D_i^2).
template <typename A>
A cosine_row_coefs(const A* dot, const A* rn, A kn, int64_t N, A* dK_to_ck, A* cm) {
  A coef_key = 0;
  for (int64_t i = 0; i < N; ++i) {
    const A D = cosine_denominator(kn, rn[i]);
    const A dK = dK_to_ck[i];
    coef_key += dK * cosine_self_coef(dot[i], rn[i], kn, D);
    cm[i] = dK * cosine_self_coef(dot[i], kn, rn[i], D);
    dK_to_ck[i] = dK / D;
  }
  return coef_key;
}

// Normalised shift offset: output i reads source (i + off) mod N for shift index j.
inline int64_t shift_offset(int64_t j, int64_t k, int64_t N) {
  int64_t off = (k - j) % N;
  return off < 0 ? off + N : off;
}

// Circular shift forward (eq. 8): out_i = sum_j s_j in_{(i - (j - k)) mod N}.
template <typename A>
void shift_row_fwd(const A* in, const A* s, int64_t N, int64_t S, A* out) {
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
void shift_row_bwd(const A* gout, const A* in, const A* s, int64_t N, int64_t S, A* gin, A* gs) {
  const int64_t k = (S - 1) / 2;
  std::fill(gin, gin + N, A(0));
  for (int64_t j = 0; j < S; ++j) {
    const A sj = s[j];
    const int64_t off = shift_offset(j, k, N);
    const int64_t split = N - off;
    A acc = 0;
    for (int64_t i = 0; i < split; ++i) {
      gin[i + off] += sj * gout[i];
      acc += gout[i] * in[i + off];
    }
    for (int64_t i = split; i < N; ++i) {
      gin[i + off - N] += sj * gout[i];
      acc += gout[i] * in[i + off - N];
    }
    gs[j] = acc;
  }
}

// Sharpening forward (eq. 9), scale-free: r = in / max(in), out = r^g / max(sum r^g, tiny).
// Writes r (for the backward) and out; returns the row maximum used.
template <typename A>
A sharpen_row_fwd(const A* in, A gamma, int64_t N, A* r, A* out, A* sum_out) {
  A mx = in[0];
  for (int64_t i = 1; i < N; ++i) mx = std::max(mx, in[i]);
  mx = sharpen_scale(mx);
  A sum = 0;
  for (int64_t i = 0; i < N; ++i) {
    const A ri = in[i] / mx;
    r[i] = ri;
    const A p = sharpen_power(ri, gamma);
    out[i] = p;
    sum += p;
  }
  const A inv = A(1) / std::max(sum, sharpen_tiny<A>());
  for (int64_t i = 0; i < N; ++i) out[i] *= inv;
  *sum_out = sum;
  return mx;
}

// Sharpening backward: from dL/dw (gout) and the forward's r, w = out, sum and max to dL/din
// (written to gin, may alias gout) and dL/dgamma (returned). The max is a detached rescale.
template <typename A>
A sharpen_row_bwd(const A* gout, const A* r, const A* w, A sum, A mx, A gamma, int64_t N,
                  A* gin) {
  const A Sc = std::max(sum, sharpen_tiny<A>());
  A wdg = 0;
  if (sum >= sharpen_tiny<A>()) {
    for (int64_t i = 0; i < N; ++i) wdg += w[i] * gout[i];
  }
  const A inv_S = A(1) / Sc;
  A ggamma = 0;
  for (int64_t i = 0; i < N; ++i) {
    const A gp = (gout[i] - wdg) * inv_S;  // dL/dp_i, p_i = r_i^gamma
    ggamma += gp * sharpen_gamma_term(w[i] * Sc, r[i]);
    gin[i] = gp * sharpen_power_grad(r[i], gamma) / mx;
  }
  return ggamma;
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

// Memory and key gradients of content addressing for one batch: given per-head ck, cm (N each,
// from cosine_row_coefs) and coef_key, writes dL/dM (N, W) summed over heads in head order and
// dL/dk (H, W). `kacc` holds the keys (H*W, from content_batch_dots), `gkacc` is H*W
// scratch, `gmacc` W scratch.
template <typename T, typename A>
void cosine_batch_grads(const T* M, const A* kacc, const A* ck, const A* cm, const A* coef_key,
                        int64_t H, int64_t N, int64_t W, T* gM, T* gk, A* gkacc, A* gmacc) {
  std::fill(gkacc, gkacc + H * W, A(0));
  for (int64_t i = 0; i < N; ++i) {
    const T* Mi = M + i * W;
    std::fill(gmacc, gmacc + W, A(0));
    for (int64_t h = 0; h < H; ++h) {
      const A c1 = ck[h * N + i];
      const A c2 = cm[h * N + i];
      const A* kh = kacc + h * W;
      A* gkh = gkacc + h * W;
      for (int64_t m = 0; m < W; ++m) {
        const A x = static_cast<A>(Mi[m]);
        gmacc[m] += c1 * kh[m] - c2 * x;
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

// ============================ argument checks ===============================================

#define NTM_DISPATCH(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

// ============================ fused addressing ==============================================

at::Tensor address_fwd_cpu(const at::Tensor& memory_, const at::Tensor& key_,
                           const at::Tensor& beta_, const at::Tensor& gate_,
                           const at::Tensor& shift_, const at::Tensor& gamma_,
                           const at::Tensor& w_prev_) {
  const Dims d = check_address_args("ntm_fast::address_fwd", memory_, key_, beta_, gate_, shift_,
                                    gamma_, w_prev_);
  const auto memory = memory_.contiguous(), key = key_.contiguous(), beta = beta_.contiguous(),
             gate = gate_.contiguous(), shift = shift_.contiguous(), gamma = gamma_.contiguous(),
             w_prev = w_prev_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, memory.options());
  const int64_t B = d.B, H = d.H, N = d.N, W = d.W, S = d.S;
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::address_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T* M = memory.const_data_ptr<T>();
    const T* K = key.const_data_ptr<T>();
    const T* be = beta.const_data_ptr<T>();
    const T* ga = gate.const_data_ptr<T>();
    const T* sh = shift.const_data_ptr<T>();
    const T* gm = gamma.const_data_ptr<T>();
    const T* wp = w_prev.const_data_ptr<T>();
    T* o = out.mutable_data_ptr<T>();
    // One batch per task: the row norms are shared by its heads.
    at::parallel_for(0, B, grain_for(H * N * (W + S)), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>((H + 5) * N + H * W + H + S));
      A *dot = buf.data(), *rn = dot + H * N, *wc = rn + N, *wg = wc + N, *wt = wg + N,
        *r = wt + N, *kacc = r + N, *kn = kacc + H * W, *s = kn + H;
      for (int64_t b = begin; b < end; ++b) {
        content_batch_dots<T, A>(M + b * N * W, K + b * H * W, H, N, W, kacc, kn, dot, rn);
        for (int64_t h = 0; h < H; ++h) {
          const int64_t bh = b * H + h;
          content_row_softmax(dot + h * N, rn, kn[h], static_cast<A>(be[bh]), N, wc);
          const A g = static_cast<A>(ga[bh]);
          const T* wpr = wp + bh * N;
          for (int64_t i = 0; i < N; ++i) wg[i] = interpolate(wc[i], static_cast<A>(wpr[i]), g);
          load_row(sh + bh * S, S, s);
          shift_row_fwd(wg, s, N, S, wt);
          A sum;
          sharpen_row_fwd(wt, static_cast<A>(gm[bh]), N, r, /*out=*/wc, &sum);
          store_row(wc, N, o + bh * N);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
address_bwd_cpu(const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& key_,
                const at::Tensor& beta_, const at::Tensor& gate_, const at::Tensor& shift_,
                const at::Tensor& gamma_, const at::Tensor& w_prev_) {
  const char* op = "ntm_fast::address_bwd";
  const Dims d =
      check_address_args(op, memory_, key_, beta_, gate_, shift_, gamma_, w_prev_);
  check_grad(op, grad_, {d.B, d.H, d.N}, memory_, "memory");
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), key = key_.contiguous(),
             beta = beta_.contiguous(), gate = gate_.contiguous(), shift = shift_.contiguous(),
             gamma = gamma_.contiguous(), w_prev = w_prev_.contiguous();
  const auto opts = memory.options();
  const int64_t B = d.B, H = d.H, N = d.N, W = d.W, S = d.S;
  at::Tensor g_memory = new_output({B, N, W}, opts), g_key = new_output({B, H, W}, opts),
             g_beta = new_output({B, H}, opts), g_gate = new_output({B, H}, opts),
             g_shift = new_output({B, H, S}, opts), g_gamma = new_output({B, H}, opts),
             g_wprev = new_output({B, H, N}, opts);
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::address_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T* G = grad.const_data_ptr<T>();
    const T* M = memory.const_data_ptr<T>();
    const T* K = key.const_data_ptr<T>();
    const T* be = beta.const_data_ptr<T>();
    const T* ga = gate.const_data_ptr<T>();
    const T* sh = shift.const_data_ptr<T>();
    const T* gm = gamma.const_data_ptr<T>();
    const T* wp = w_prev.const_data_ptr<T>();
    T *gM = g_memory.mutable_data_ptr<T>(), *gK = g_key.mutable_data_ptr<T>(),
      *gB = g_beta.mutable_data_ptr<T>(), *gG = g_gate.mutable_data_ptr<T>(),
      *gS = g_shift.mutable_data_ptr<T>(), *gY = g_gamma.mutable_data_ptr<T>(),
      *gP = g_wprev.mutable_data_ptr<T>();
    at::parallel_for(0, B, grain_for(H * N * (2 * W + S)), [&](int64_t begin, int64_t end) {
      // dots (H*N), rn, then per head: wc, wg, r(sharpen), w, buffer; ck, cm for every head.
      std::vector<A> buf(static_cast<size_t>(6 * N + 3 * H * N + 2 * S + 2 * H + 2 * H * W + W));
      A *dot = buf.data(), *rn = dot + H * N, *wc = rn + N, *wg = wc + N, *r = wg + N, *w = r + N,
        *tmp = w + N, *ck = tmp + N, *cm = ck + H * N, *s = cm + H * N, *gs = s + S,
        *coef_key = gs + S, *kn = coef_key + H, *kacc = kn + H, *gkacc = kacc + H * W,
        *gmacc = gkacc + H * W;
      for (int64_t b = begin; b < end; ++b) {
        const T* Mb = M + b * N * W;
        content_batch_dots<T, A>(Mb, K + b * H * W, H, N, W, kacc, kn, dot, rn);
        for (int64_t h = 0; h < H; ++h) {
          const int64_t bh = b * H + h;
          const A* doth = dot + h * N;
          // ---- recompute the forward
          const A beta_v = static_cast<A>(be[bh]), g = static_cast<A>(ga[bh]),
                  gamma_v = static_cast<A>(gm[bh]);
          content_row_softmax(doth, rn, kn[h], beta_v, N, wc);
          const T* wpr = wp + bh * N;
          for (int64_t i = 0; i < N; ++i) wg[i] = interpolate(wc[i], static_cast<A>(wpr[i]), g);
          load_row(sh + bh * S, S, s);
          shift_row_fwd(wg, s, N, S, tmp);  // tmp = w~
          A sum;
          const A mx = sharpen_row_fwd(tmp, gamma_v, N, r, w, &sum);
          // ---- backward: sharpen -> shift -> interpolation -> softmax -> cosine
          load_row(G + bh * N, N, tmp);
          gY[bh] = store_grad<T>(sharpen_row_bwd(tmp, r, w, sum, mx, gamma_v, N, tmp));
          shift_row_bwd(tmp, wg, s, N, S, /*gin=*/r, gs);  // r = dL/dwg
          store_grad_row(gs, S, gS + bh * S);
          A gg = 0;
          T* gpr = gP + bh * N;
          for (int64_t i = 0; i < N; ++i) {
            const A gwg = r[i];
            gg += (wc[i] - static_cast<A>(wpr[i])) * gwg;
            gpr[i] = store_grad<T>((A(1) - g) * gwg);
            r[i] = g * gwg;  // dL/dwc
          }
          gG[bh] = store_grad<T>(gg);
          gB[bh] = store_grad<T>(content_row_softmax_bwd(wc, doth, rn, kn[h], beta_v, N, r));
          coef_key[h] = cosine_row_coefs(doth, rn, kn[h], N, r, cm + h * N);
          std::copy(r, r + N, ck + h * N);
        }
        cosine_batch_grads<T, A>(Mb, kacc, ck, cm, coef_key, H, N, W, gM + b * N * W,
                                 gK + b * H * W, gkacc, gmacc);
      }
    });
  });
  return {g_memory, g_key, g_beta, g_gate, g_shift, g_gamma, g_wprev};
}

// ============================ single stages =================================================

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
      std::vector<A> buf(static_cast<size_t>((H + 2) * N + H * W + H));
      A *dot = buf.data(), *rn = dot + H * N, *wc = rn + N, *kacc = wc + N, *kn = kacc + H * W;
      for (int64_t b = begin; b < end; ++b) {
        content_batch_dots<T, A>(M + b * N * W, K + b * H * W, H, N, W, kacc, kn, dot, rn);
        for (int64_t h = 0; h < H; ++h) {
          content_row_softmax(dot + h * N, rn, kn[h], static_cast<A>(be[b * H + h]), N, wc);
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
      std::vector<A> buf(static_cast<size_t>(3 * N + 3 * H * N + 2 * H + 2 * H * W + W));
      A *dot = buf.data(), *rn = dot + H * N, *wc = rn + N, *tmp = wc + N, *ck = tmp + N,
        *cm = ck + H * N, *coef_key = cm + H * N, *kn = coef_key + H, *kacc = kn + H,
        *gkacc = kacc + H * W, *gmacc = gkacc + H * W;
      for (int64_t b = begin; b < end; ++b) {
        const T* Mb = M + b * N * W;
        content_batch_dots<T, A>(Mb, K + b * H * W, H, N, W, kacc, kn, dot, rn);
        for (int64_t h = 0; h < H; ++h) {
          const int64_t bh = b * H + h;
          const A beta_v = static_cast<A>(be[bh]);
          const A* doth = dot + h * N;
          content_row_softmax(doth, rn, kn[h], beta_v, N, wc);
          load_row(G + bh * N, N, tmp);
          gB[bh] = store_grad<T>(content_row_softmax_bwd(wc, doth, rn, kn[h], beta_v, N, tmp));
          coef_key[h] = cosine_row_coefs(doth, rn, kn[h], N, tmp, cm + h * N);
          std::copy(tmp, tmp + N, ck + h * N);
        }
        cosine_batch_grads<T, A>(Mb, kacc, ck, cm, coef_key, H, N, W, gM + b * N * W,
                                 gK + b * H * W, gkacc, gmacc);
      }
    });
  });
  return {g_memory, g_key, g_beta};
}

at::Tensor interpolate_fwd_cpu(const at::Tensor& wc_, const at::Tensor& wp_,
                               const at::Tensor& gate_) {
  const char* op = "ntm_fast::interpolate_fwd";
  const Dims d = check_weighting_op(op, "w_content", wc_);
  check_arg(op, "w_prev", wp_, "(B, H, N)", {d.B, d.H, d.N}, wc_, "w_content");
  check_arg(op, "gate", gate_, "(B, H)", {d.B, d.H}, wc_, "w_content");
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
  const Dims d = check_weighting_op(op, "w_content", wc_);
  check_arg(op, "w_prev", wp_, "(B, H, N)", {d.B, d.H, d.N}, wc_, "w_content");
  check_arg(op, "gate", gate_, "(B, H)", {d.B, d.H}, wc_, "w_content");
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
  const Dims d = check_weighting_op(op, "w", w_);
  check_arg(op, "shift", shift_, "(B, H, S)", {d.B, d.H, -1}, w_, "w");
  check_shift_count(op, shift_, d.N);
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
  const Dims d = check_weighting_op(op, "w", w_);
  check_arg(op, "shift", shift_, "(B, H, S)", {d.B, d.H, -1}, w_, "w");
  check_shift_count(op, shift_, d.N);
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
  const Dims d = check_weighting_op(op, "w", w_);
  check_arg(op, "gamma", gamma_, "(B, H)", {d.B, d.H}, w_, "w");
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
  const Dims d = check_weighting_op(op, "w", w_);
  check_arg(op, "gamma", gamma_, "(B, H)", {d.B, d.H}, w_, "w");
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
      std::vector<A> buf(static_cast<size_t>(4 * N));
      A *in = buf.data(), *r = in + N, *res = r + N, *go = res + N;
      for (int64_t bh = begin; bh < end; ++bh) {
        const A gamma_v = static_cast<A>(gm[bh]);
        load_row(x + bh * N, N, in);
        A sum;
        const A mx = sharpen_row_fwd(in, gamma_v, N, r, res, &sum);
        load_row(G + bh * N, N, go);
        gy[bh] = store_grad<T>(sharpen_row_bwd(go, r, res, sum, mx, gamma_v, N, go));
        store_grad_row(go, N, gw + bh * N);
      }
    });
  });
  return {g_w, g_gamma};
}

// ============================ read / write ==================================================

at::Tensor read_fwd_cpu(const at::Tensor& memory_, const at::Tensor& w_) {
  const Dims d = check_rw("ntm_fast::read_fwd", memory_, w_);
  const auto memory = memory_.contiguous(), w = w_.contiguous();
  const int64_t H = d.H, N = d.N, W = d.W;
  at::Tensor out = new_output({d.B, H, W}, memory.options());
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
  const Dims d = check_rw(op, memory_, w_);
  check_grad(op, grad_, {d.B, d.H, d.W}, memory_, "memory");
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), w = w_.contiguous();
  const int64_t H = d.H, N = d.N, W = d.W;
  at::Tensor g_memory = new_output({d.B, N, W}, memory.options()),
             g_w = new_output({d.B, H, N}, memory.options());
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
          gw[(b * H + h) * N + i] = store_grad<T>(row_dot(rh, Mi, W, static_cast<A*>(nullptr)));
        }
        store_grad_row(acc, W, gM + bi * W);
      }
    });
  });
  return {g_memory, g_w};
}

at::Tensor write_fwd_cpu(const at::Tensor& memory_, const at::Tensor& w_, const at::Tensor& erase_,
                         const at::Tensor& add_) {
  const Dims d = check_write_args("ntm_fast::write_fwd", memory_, w_, erase_, add_);
  const auto memory = memory_.contiguous(), w = w_.contiguous(), erase = erase_.contiguous(),
             add = add_.contiguous();
  const int64_t H = d.H, N = d.N, W = d.W;
  at::Tensor out = new_output({d.B, N, W}, memory.options());
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::write_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *M = memory.const_data_ptr<T>(), *x = w.const_data_ptr<T>(),
            *E = erase.const_data_ptr<T>(), *Ad = add.const_data_ptr<T>();
    T* o = out.mutable_data_ptr<T>();
    at::parallel_for(0, d.B * N, grain_for(2 * H * W), [&](int64_t begin, int64_t end) {
      std::vector<A> buf(static_cast<size_t>(2 * W));
      A *keep = buf.data(), *addv = keep + W;
      for (int64_t bi = begin; bi < end; ++bi) {
        const int64_t b = bi / N, i = bi % N;
        {  // head 0 initialises the products and sums (no fill pass)
          const A wv = static_cast<A>(x[b * H * N + i]);
          const T *e = E + b * H * W, *a = Ad + b * H * W;
          for (int64_t m = 0; m < W; ++m) {
            keep[m] = erase_factor(wv, static_cast<A>(e[m]));
            addv[m] = wv * static_cast<A>(a[m]);
          }
        }
        for (int64_t h = 1; h < H; ++h) {
          const int64_t bh = b * H + h;
          const A wv = static_cast<A>(x[bh * N + i]);
          const T *e = E + bh * W, *a = Ad + bh * W;
          for (int64_t m = 0; m < W; ++m) {
            keep[m] *= erase_factor(wv, static_cast<A>(e[m]));
            addv[m] += wv * static_cast<A>(a[m]);
          }
        }
        const T* Mi = M + bi * W;
        T* oi = o + bi * W;
        for (int64_t m = 0; m < W; ++m) {
          oi[m] = static_cast<T>(static_cast<A>(Mi[m]) * keep[m] + addv[m]);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> write_bwd_cpu(
    const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& w_,
    const at::Tensor& erase_, const at::Tensor& add_) {
  const char* op = "ntm_fast::write_bwd";
  const Dims d = check_write_args(op, memory_, w_, erase_, add_);
  check_grad(op, grad_, {d.B, d.N, d.W}, memory_, "memory");
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), w = w_.contiguous(),
             erase = erase_.contiguous(), add = add_.contiguous();
  const int64_t H = d.H, N = d.N, W = d.W;
  const auto opts = memory.options();
  at::Tensor g_memory = new_output({d.B, N, W}, opts), g_w = new_output({d.B, H, N}, opts),
             g_erase = new_output({d.B, H, W}, opts), g_add = new_output({d.B, H, W}, opts);
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::write_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    const T *G = grad.const_data_ptr<T>(), *M = memory.const_data_ptr<T>(),
            *x = w.const_data_ptr<T>(), *E = erase.const_data_ptr<T>(),
            *Ad = add.const_data_ptr<T>();
    T *gM = g_memory.mutable_data_ptr<T>(), *gw = g_w.mutable_data_ptr<T>(),
      *ge = g_erase.mutable_data_ptr<T>(), *ga = g_add.mutable_data_ptr<T>();
    // The erase/add gradients sum over rows: one batch per task, rows in order (deterministic).
    at::parallel_for(0, d.B, grain_for(4 * H * N * W), [&](int64_t begin, int64_t end) {
      // e, a (H*W), factors f (H*W), prefix products pre (H*W), suffix (W), g row, M row,
      // ge/ga accumulators (H*W each).
      std::vector<A> buf(static_cast<size_t>(6 * H * W + 3 * W));
      A *e = buf.data(), *a = e + H * W, *f = a + H * W, *pre = f + H * W, *gea = pre + H * W,
        *gaa = gea + H * W, *suf = gaa + H * W, *gi = suf + W, *mi = gi + W;
      for (int64_t b = begin; b < end; ++b) {
        load_row(E + b * H * W, H * W, e);
        load_row(Ad + b * H * W, H * W, a);
        std::fill(gea, gea + 2 * H * W, A(0));
        if (H == 1) {  // one write head (the common case): the other heads' product is 1
          for (int64_t i = 0; i < N; ++i) {
            const int64_t row = b * N + i;
            const T *Gi = G + row * W, *Mi = M + row * W;
            T* gMi = gM + row * W;
            const A wv = static_cast<A>(x[row]);
            A lanes[kLanes] = {};
            for (int64_t m = 0; m < W; ++m) {
              const A g = static_cast<A>(Gi[m]), mv = static_cast<A>(Mi[m]);
              gMi[m] = store_grad<T>(g * erase_factor(wv, e[m]));
              lanes[m % kLanes] += write_w_grad_term(g, mv, e[m], a[m], A(1));
              gea[m] += write_e_grad_term(g, mv, wv, A(1));
              gaa[m] += g * wv;
            }
            gw[row] = store_grad<T>(lane_total(lanes));
          }
          store_grad_row(gea, W, ge + b * W);
          store_grad_row(gaa, W, ga + b * W);
          continue;
        }
        for (int64_t i = 0; i < N; ++i) {
          const int64_t row = b * N + i;
          load_row(G + row * W, W, gi);
          load_row(M + row * W, W, mi);
          // f_h = 1 - w_h e_h; pre_h = prod_{h' < h} f_h'.
          for (int64_t h = 0; h < H; ++h) {
            const A wv = static_cast<A>(x[(b * H + h) * N + i]);
            A *fh = f + h * W, *ph = pre + h * W;
            const A* eh = e + h * W;
            const A* prev = h ? f + (h - 1) * W : nullptr;
            const A* pprev = h ? pre + (h - 1) * W : nullptr;
            for (int64_t m = 0; m < W; ++m) {
              fh[m] = erase_factor(wv, eh[m]);
              ph[m] = h ? pprev[m] * prev[m] : A(1);
            }
          }
          // dL/dM = g * prod_h f_h.
          {
            const A *fl = f + (H - 1) * W, *pl = pre + (H - 1) * W;
            T* gMi = gM + row * W;
            for (int64_t m = 0; m < W; ++m) gMi[m] = store_grad<T>(gi[m] * pl[m] * fl[m]);
          }
          std::fill(suf, suf + W, A(1));
          for (int64_t h = H - 1; h >= 0; --h) {
            const int64_t bh = b * H + h;
            const A wv = static_cast<A>(x[bh * N + i]);
            const A *eh = e + h * W, *ah = a + h * W, *fh = f + h * W, *ph = pre + h * W;
            A *geh = gea + h * W, *gah = gaa + h * W;
            A gwv = 0;
            for (int64_t m = 0; m < W; ++m) {
              const A others = ph[m] * suf[m];  // product of the other heads' factors
              gwv += write_w_grad_term(gi[m], mi[m], eh[m], ah[m], others);
              geh[m] += write_e_grad_term(gi[m], mi[m], wv, others);
              gah[m] += gi[m] * wv;
              suf[m] *= fh[m];
            }
            gw[bh * N + i] = store_grad<T>(gwv);
          }
        }
        store_grad_row(gea, H * W, ge + b * H * W);
        store_grad_row(gaa, H * W, ga + b * H * W);
      }
    });
  });
  return {g_memory, g_w, g_erase, g_add};
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
  m.impl("address_fwd", &address_fwd_cpu);
  m.impl("address_bwd", &address_bwd_cpu);
  m.impl("read_fwd", &read_fwd_cpu);
  m.impl("read_bwd", &read_bwd_cpu);
  m.impl("write_fwd", &write_fwd_cpu);
  m.impl("write_bwd", &write_bwd_cpu);
}

}  // namespace ntm_fast
