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
#include <ATen/ops/bmm.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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

// ---- small vector helpers (GCC/Clang vector extensions: SSE2 on x86-64, NEON on arm64) ------
// Fixed-order lane reductions: lane l of a sum takes the terms i = l mod L, the lanes are added
// in a fixed tree at the end; the order depends only on the length, never on the thread count.

template <typename A>
struct Vec {
  typedef A v4 __attribute__((vector_size(4 * sizeof(A))));
};

template <typename A>
inline typename Vec<A>::v4 vload(const A* p) {
  typename Vec<A>::v4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename A>
inline A hsum(typename Vec<A>::v4 v) {
  return (v[0] + v[1]) + (v[2] + v[3]);
}

// sum_m a[m] * x[m] in 4 lanes (A storage on both sides).
template <typename A>
inline A vdot(const A* __restrict__ a, const A* __restrict__ x, int64_t W) {
  typename Vec<A>::v4 acc = {};
  int64_t m = 0;
  for (; m + 4 <= W; m += 4) acc += vload(a + m) * vload(x + m);
  A rem = 0;
  for (; m < W; ++m) rem += a[m] * x[m];
  return hsum<A>(acc) + rem;
}

// Sum of x[0..n) in 8 lanes.
template <typename A>
inline A vsum(const A* __restrict__ x, int64_t n) {
  typename Vec<A>::v4 a0 = {}, a1 = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += vload(x + i);
    a1 += vload(x + i + 4);
  }
  A rem = 0;
  for (; i < n; ++i) rem += x[i];
  return hsum<A>(a0 + a1) + rem;
}

// sum_i a[i] * b[i] over a row of length n, 8 lanes.
template <typename A>
inline A vdot8(const A* __restrict__ a, const A* __restrict__ b, int64_t n) {
  typename Vec<A>::v4 a0 = {}, a1 = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += vload(a + i) * vload(b + i);
    a1 += vload(a + i + 4) * vload(b + i + 4);
  }
  A rem = 0;
  for (; i < n; ++i) rem += a[i] * b[i];
  return hsum<A>(a0 + a1) + rem;
}

// Max of x[0..n) (n >= 1); NaN entries are skipped as by the scalar std::max chain.
template <typename A>
inline A vmax(const A* __restrict__ x, int64_t n) {
  A mx = x[0];
  int64_t i = 0;
  if (n >= 4) {
    typename Vec<A>::v4 a = vload(x);
    for (i = 4; i + 4 <= n; i += 4) {
      const typename Vec<A>::v4 v = vload(x + i);
      a = a < v ? v : a;
    }
    mx = std::max(std::max(a[0], a[1]), std::max(a[2], a[3]));
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

// exp and log for float rows: branch-free (Cephes) forms on 4-lane vectors, ~1-2 ulp (glibc's
// are ~0.5 ulp but one call per element). exp(0) = 1 and log(1) = 0 exactly; exp(x) for
// x < -87.3 (results below FLT_MIN) is 0, NaN stays NaN. The scalar forms run the same vector
// code on one lane, so every element gets the same result wherever it sits in a row. Double
// keeps libm.
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

inline v4f exp4(v4f x) {
  const v4f zero = {}, lo = zero - 87.3f, hi = zero + 88.3f;
  const v4i below = x < lo, above = x > hi;
  v4f xc = below ? lo : x;
  xc = above ? hi : xc;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const v4f n = (xc * 1.44269504088896341f + magic) - magic;
  v4f r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v4f y = zero + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const v4i ni = __builtin_convertvector(n, v4i);
  const v4f scale = reinterpret_cast<v4f>((ni + 127) << 23);
  v4f res = y * scale;
  res = below ? zero : res;
  return above ? zero + std::numeric_limits<float>::infinity() : res;
}

// log(x) for x > 0 (callers select another value for x <= 0); subnormals are rescaled.
inline v4f log4(v4f x) {
  const v4f zero = {};
  const v4i sub = x < 1.17549435e-38f;
  const v4f xs = sub ? x * 8388608.0f : x;  // * 2^23
  const v4i bits = reinterpret_cast<v4i>(xs);
  v4f e = __builtin_convertvector((bits >> 23) - 126, v4f);
  e = sub ? e - 23.0f : e;
  v4f m = reinterpret_cast<v4f>((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  const v4i small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? (m + m) - 1.0f : m - 1.0f;
  const v4f z = m * m;
  v4f y = zero + 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += e * -2.12194440e-4f;
  y += z * -0.5f;
  v4f res = m + y;
  res += e * 0.693359375f;
  return res;
}

inline float row_exp(float x) { return exp4(v4f{} + x)[0]; }
inline double row_exp(double x) { return std::exp(x); }
inline float row_log(float x) { return log4(v4f{} + x)[0]; }
inline double row_log(double x) { return std::log(x); }

// x[i] = exp(scale * x[i]) over a row.
template <typename A>
inline void exp_row(A* x, A scale, int64_t n) {
  int64_t i = 0;
  if constexpr (std::is_same_v<A, float>) {
    for (; i + 4 <= n; i += 4) {
      v4f v;
      std::memcpy(&v, x + i, sizeof(v));
      v = exp4(v * scale);
      std::memcpy(x + i, &v, sizeof(v));
    }
  }
  for (; i < n; ++i) x[i] = row_exp(scale * x[i]);
}

// x[i] = log(x[i]) for x[i] > 0, -inf for 0, NaN below 0 or NaN.
template <typename A>
inline void log_row(A* x, int64_t n) {
  const A ninf = -std::numeric_limits<A>::infinity();
  const A nan = std::numeric_limits<A>::quiet_NaN();
  int64_t i = 0;
  if constexpr (std::is_same_v<A, float>) {
    const v4f one = v4f{} + 1.0f, vninf = v4f{} + ninf, vnan = v4f{} + nan;
    for (; i + 4 <= n; i += 4) {
      v4f v;
      std::memcpy(&v, x + i, sizeof(v));
      const v4i pos = v > 0.0f, zero = v == 0.0f;
      const v4f l = log4(pos ? v : one);
      v = pos ? l : (zero ? vninf : vnan);
      std::memcpy(x + i, &v, sizeof(v));
    }
  }
  for (; i < n; ++i) {
    const A v = x[i];
    x[i] = v > A(0) ? row_log(v) : (v == A(0) ? ninf : nan);
  }
}

// sum_m a[m] * x[m] for a row x of storage type T.
template <typename T, typename A>
inline A row_dot(const A* a, const T* x, int64_t W) {
  if constexpr (std::is_same_v<T, A>) {
    return vdot(a, x, W);
  } else {
    A u = 0;
    for (int64_t m = 0; m < W; ++m) u += a[m] * static_cast<A>(x[m]);
    return u;
  }
}

// Content addressing, the part shared by all heads of one batch (eq. 6): rn_i = |M_i| once
// and dot[h*N + i] = k_h.M_i for every head. Loads the keys (H x W) into kacc and writes
// kn[h] = |k_h|. Each dot runs in 4 lanes over the width (a fixed order).
template <typename T, typename A>
void content_batch_dots(const T* M, const T* key, int64_t H, int64_t N, int64_t W, A* kacc,
                        A* kn, A* dot, A* rn, A* mrow) {
  for (int64_t h = 0; h < H; ++h) {
    A* kh = kacc + h * W;
    for (int64_t m = 0; m < W; ++m) kh[m] = static_cast<A>(key[h * W + m]);
    kn[h] = ntm_sqrt(vdot(kh, kh, W));
  }
  for (int64_t i = 0; i < N; ++i) {
    const A* Mi;
    if constexpr (std::is_same_v<T, A>) {
      Mi = M + i * W;
    } else {
      for (int64_t m = 0; m < W; ++m) mrow[m] = static_cast<A>(M[i * W + m]);
      Mi = mrow;
    }
    rn[i] = ntm_sqrt(vdot(Mi, Mi, W));
    for (int64_t h = 0; h < H; ++h) dot[h * N + i] = vdot(kacc + h * W, Mi, W);
  }
}

// Content weighting of one head (eq. 5) from its dots, the row norms and |k|: the stable
// softmax of beta K_i, K_i = dot_i / (|k| |M_i| + eps), written to wc.
template <typename A>
void content_row_softmax(const A* __restrict__ dot, const A* __restrict__ rn, A kn, A beta,
                         int64_t N, A* __restrict__ wc) {
  for (int64_t i = 0; i < N; ++i) wc[i] = beta * (dot[i] / cosine_denominator(kn, rn[i]));
  const A zmax = vmax(wc, N);
  for (int64_t i = 0; i < N; ++i) wc[i] -= zmax;
  exp_row(wc, A(1), N);
  const A inv = A(1) / vsum(wc, N);
  for (int64_t i = 0; i < N; ++i) wc[i] *= inv;
}

// Content addressing backward through the softmax: from dL/dwc (gwc) to dL/dK (written into
// gwc), returns dL/dbeta. `tmp` is N scratch.
template <typename A>
A content_row_softmax_bwd(const A* __restrict__ wc, const A* __restrict__ dot,
                          const A* __restrict__ rn, A kn, A beta, int64_t N, A* __restrict__ gwc,
                          A* __restrict__ tmp) {
  const A wdg = vdot8(wc, gwc, N);
  for (int64_t i = 0; i < N; ++i) {
    const A dz = softmax_grad(wc[i], gwc[i], wdg);
    const A K = dot[i] / cosine_denominator(kn, rn[i]);
    tmp[i] = dz * K;
    gwc[i] = beta * dz;  // dL/dK_i
  }
  return vsum(tmp, N);
}

// Cosine backward coefficients for one head: with dK = dL/dK,
//   dL/dk   = sum_i c_k[i] M_i - coef_key * k,      c_k[i] = dK_i / D_i
//   dL/dM_i = c_k[i] k - c_m[i] M_i,                c_m[i] = dK_i u_i |k| / (|M_i| D_i^2)
// Overwrites dK with c_k, writes c_m, returns coef_key = sum_i dK_i u_i |M_i| / (|k| D_i^2).
// `tmp` is N scratch.
template <typename A>
A cosine_row_coefs(const A* __restrict__ dot, const A* __restrict__ rn, A kn, int64_t N,
                   A* __restrict__ dK_to_ck, A* __restrict__ cm, A* __restrict__ tmp) {
  const A inv_kn = safe_inverse_norm(kn);
  for (int64_t i = 0; i < N; ++i) {
    const A D = cosine_denominator(kn, rn[i]);
    const A dK = dK_to_ck[i];
    const A q = dK * (dot[i] / (D * D));
    tmp[i] = q * rn[i] * inv_kn;
    cm[i] = q * kn * safe_inverse_norm(rn[i]);
    dK_to_ck[i] = dK / D;
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
      std::vector<A> buf(static_cast<size_t>((H + 5) * N + H * W + H + S + W));
      A *dot = buf.data(), *rn = dot + H * N, *wc = rn + N, *wg = wc + N, *wt = wg + N,
        *r = wt + N, *kacc = r + N, *kn = kacc + H * W, *s = kn + H, *mrow = s + S;
      for (int64_t b = begin; b < end; ++b) {
        content_batch_dots<T, A>(M + b * N * W, K + b * H * W, H, N, W, kacc, kn, dot, rn, mrow);
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
      std::vector<A> buf(static_cast<size_t>(8 * N + 3 * H * N + 2 * S + 2 * H + 2 * H * W + 2 * W));
      A *dot = buf.data(), *rn = dot + H * N, *wc = rn + N, *wg = wc + N, *r = wg + N, *w = r + N,
        *tmp = w + N, *ck = tmp + N, *cm = ck + H * N, *s = cm + H * N, *gs = s + S,
        *coef_key = gs + S, *kn = coef_key + H, *kacc = kn + H, *gkacc = kacc + H * W,
        *gmacc = gkacc + H * W, *mrow = gmacc + W, *sc = mrow + W;
      for (int64_t b = begin; b < end; ++b) {
        const T* Mb = M + b * N * W;
        content_batch_dots<T, A>(Mb, K + b * H * W, H, N, W, kacc, kn, dot, rn, mrow);
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
          gY[bh] = store_grad<T>(sharpen_row_bwd(tmp, r, w, sum, mx, gamma_v, N, tmp, sc));
          shift_row_bwd(tmp, wg, s, N, S, /*gin=*/r, gs);  // r = dL/dwg
          store_grad_row(gs, S, gS + bh * S);
          A* gwc = ck + h * N;
          T* gpr = gP + bh * N;
          const A g1 = A(1) - g;
          for (int64_t i = 0; i < N; ++i) {
            const A gwg = r[i];
            sc[i] = (wc[i] - static_cast<A>(wpr[i])) * gwg;
            gpr[i] = store_grad<T>(g1 * gwg);
            gwc[i] = g * gwg;  // dL/dwc
          }
          gG[bh] = store_grad<T>(vsum(sc, N));
          gB[bh] = store_grad<T>(content_row_softmax_bwd(wc, doth, rn, kn[h], beta_v, N, gwc, sc));
          coef_key[h] = cosine_row_coefs(doth, rn, kn[h], N, gwc, cm + h * N, sc);
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
      std::vector<A> buf(static_cast<size_t>((H + 2) * N + H * W + H + W));
      A *dot = buf.data(), *rn = dot + H * N, *wc = rn + N, *kacc = wc + N, *kn = kacc + H * W,
        *mrow = kn + H;
      for (int64_t b = begin; b < end; ++b) {
        content_batch_dots<T, A>(M + b * N * W, K + b * H * W, H, N, W, kacc, kn, dot, rn, mrow);
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
      std::vector<A> buf(static_cast<size_t>(4 * N + 3 * H * N + 2 * H + 2 * H * W + 2 * W));
      A *dot = buf.data(), *rn = dot + H * N, *wc = rn + N, *tmp = wc + N, *ck = tmp + N,
        *cm = ck + H * N, *coef_key = cm + H * N, *kn = coef_key + H, *kacc = kn + H,
        *gkacc = kacc + H * W, *gmacc = gkacc + H * W, *mrow = gmacc + W, *sc = mrow + W;
      for (int64_t b = begin; b < end; ++b) {
        const T* Mb = M + b * N * W;
        content_batch_dots<T, A>(Mb, K + b * H * W, H, N, W, kacc, kn, dot, rn, mrow);
        for (int64_t h = 0; h < H; ++h) {
          const int64_t bh = b * H + h;
          const A beta_v = static_cast<A>(be[bh]);
          const A* doth = dot + h * N;
          content_row_softmax(doth, rn, kn[h], beta_v, N, wc);
          load_row(G + bh * N, N, tmp);
          gB[bh] = store_grad<T>(content_row_softmax_bwd(wc, doth, rn, kn[h], beta_v, N, tmp, sc));
          coef_key[h] = cosine_row_coefs(doth, rn, kn[h], N, tmp, cm + h * N, sc);
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

// ============================ read / write ==================================================

// float32/float64 reads are batched matrix products: BLAS beats a hand loop compiled without
// -march flags; half types keep the loop below, which accumulates in float32.
bool is_blas_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

at::Tensor read_fwd_cpu(const at::Tensor& memory_, const at::Tensor& w_) {
  const Dims d = check_rw("ntm_fast::read_fwd", memory_, w_);
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
  const Dims d = check_rw(op, memory_, w_);
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
