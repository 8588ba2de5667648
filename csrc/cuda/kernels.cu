// CUDA kernels of the ntm_fast ops and their torch-free launchers (see launchers.h).
//
// Row ops (content addressing, shift, sharpening, the fused addressing) run one 256-thread
// block per (batch, head) and loop over N in strides, so any N (up to 65,536 and beyond) works;
// per-row intermediates live in a global workspace of the accumulation type A (float for
// float/half/bfloat16, double for double). Dot products over W use one warp per memory row.
// Every reduction has a fixed order (warp shuffles, then warps in order), and gradients summed
// over heads or rows are computed by one thread per output element looping in a fixed order:
// results are deterministic. The per-element math is csrc/ntm_math.h, shared with the CPU code.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../ntm_math.h"
#include "launchers.h"

namespace ntm_fast {
namespace cuda {
namespace {

constexpr int kThreads = 256;  // row kernels: 8 warps
constexpr int kWarps = kThreads / 32;

// ---- element conversion -------------------------------------------------------------------
__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
struct Conv;
template <>
struct Conv<float> {
  __device__ static float from(float x) { return x; }
};
template <>
struct Conv<double> {
  __device__ static double from(double x) { return x; }
};
template <>
struct Conv<__half> {
  __device__ static __half from(float x) { return __float2half(x); }
};
template <>
struct Conv<__nv_bfloat16> {
  __device__ static __nv_bfloat16 from(float x) { return __float2bfloat16(x); }
};
template <typename T, typename A>
__device__ __forceinline__ T from_acc(A x) {
  return Conv<T>::from(x);
}

// The storage kind of T for saturate_grad (csrc/ntm_math.h).
template <typename T>
struct StoreOf {
  static constexpr Store kind = Store::Wide;
};
template <>
struct StoreOf<__half> {
  static constexpr Store kind = Store::Float16;
};
template <>
struct StoreOf<__nv_bfloat16> {
  static constexpr Store kind = Store::BFloat16;
};

// Every gradient is stored through this: half types saturate at +-finfo(T).max (no inf).
template <typename T, typename A>
__device__ __forceinline__ T grad_from_acc(A x) {
  return Conv<T>::from(saturate_grad<StoreOf<T>::kind>(x));
}

template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

// ---- reductions ---------------------------------------------------------------------------
template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <typename A>
__device__ __forceinline__ A warp_max(A v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum (is_max = false) or max over the block; every thread gets the result.
template <typename A, bool is_max>
__device__ A block_reduce(A v) {
  __shared__ A partial[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = is_max ? warp_max(v) : warp_sum(v);
  __syncthreads();  // `partial` may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const A identity = is_max ? -INFINITY : A(0);
    A x = lane < kWarps ? partial[lane] : identity;
    x = is_max ? warp_max(x) : warp_sum(x);
    if (lane == 0) partial[0] = x;
  }
  __syncthreads();
  return partial[0];
}
template <typename A>
__device__ __forceinline__ A block_sum(A v) {
  return block_reduce<A, false>(v);
}
template <typename A>
__device__ __forceinline__ A block_max(A v) {
  return block_reduce<A, true>(v);
}

// ---- block-level row functions (all threads of the block call them) --------------------------

template <typename A>
struct Pair {
  A x, y;
};

// Content addressing (eqs. 5-6) of one head, scale-safe (docs/math.md#scale-safe-norms): plain
// sums, redone on power-of-two-rescaled vectors when a squared norm is out of range. Writes the
// content weighting to wc (A) and, when non-null, dot_i = k~.M~_i, rn_i = |M~_i| and
// rinv_i = s_i^-1. Returns {|k~|, s_k^-1}.
template <typename T, typename A>
__device__ Pair<A> content_row_fwd(const T* M, const T* key, A beta, int64_t N, int64_t W,
                                   A* dot, A* rn, A* rinv, A* wc) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  A kk = 0, ka = 0;
  for (int64_t m = tid; m < W; m += kThreads) {
    const A x = to_acc(key[m]);
    kk += x * x;
    ka = fmax(ka, fabs(x));
  }
  kk = block_sum(kk);
  const A ks = norm_sq_plain(kk) ? A(1) : inverse_pow2_scale(block_max(ka));  // block-uniform
  if (ks != A(1)) {
    kk = 0;
    for (int64_t m = tid; m < W; m += kThreads) {
      const A x = A(to_acc(key[m])) * ks;
      kk += x * x;
    }
    kk = block_sum(kk);
  }
  const A kn = ntm_sqrt(kk);
  A zmax = -INFINITY;
  for (int64_t i = warp; i < N; i += kWarps) {
    const T* Mi = M + i * W;
    A u = 0, r2 = 0, ra = 0;
    for (int64_t m = lane; m < W; m += 32) {
      const A x = to_acc(Mi[m]);
      u += to_acc(key[m]) * x;
      r2 += x * x;
      ra = fmax(ra, fabs(x));
    }
    u = warp_sum(u);
    r2 = warp_sum(r2);
    const A rs = norm_sq_plain(r2) ? A(1) : inverse_pow2_scale(warp_max(ra));  // warp-uniform
    if (ks != A(1) || rs != A(1)) {
      u = 0;
      r2 = 0;
      for (int64_t m = lane; m < W; m += 32) {
        const A x = A(to_acc(Mi[m])) * rs;
        u += A(to_acc(key[m])) * ks * x;
        r2 += x * x;
      }
      u = warp_sum(u);
      r2 = warp_sum(r2);
    }
    const A r = ntm_sqrt(r2);
    const A z = beta * (u / cosine_denominator(kn, r, ks, rs));
    if (lane == 0) {
      if (dot) dot[i] = u;
      if (rn) rn[i] = r;
      if (rinv) rinv[i] = rs;
      wc[i] = z;
    }
    zmax = fmax(zmax, z);
  }
  zmax = block_max(zmax);  // synchronises: wc is visible to the whole block
  A s = 0;
  for (int64_t i = tid; i < N; i += kThreads) {
    const A e = stable_exp(wc[i], zmax);
    wc[i] = e;
    s += e;
  }
  const A inv = A(1) / block_sum(s);
  for (int64_t i = tid; i < N; i += kThreads) wc[i] *= inv;
  __syncthreads();
  Pair<A> res;
  res.x = kn;
  res.y = ks;
  return res;
}

// Backward of content addressing through the softmax and the cosine for one head. Reads
// dL/dwc from gwc (may alias cm), writes ck = dL/dK P, cq = dL/dK Q and cm (see
// cosine_row_coefs in the CPU code). Returns dL/dbeta in .x and coef_key in .y.
template <typename G, typename A>
__device__ Pair<A> content_row_bwd(const G* gwc, const A* wc, const A* dot, const A* rn,
                                   const A* rinv, Pair<A> key, A beta, int64_t N, A* ck, A* cq,
                                   A* cm) {
  const int tid = threadIdx.x;
  const A kn = key.x, kinv = key.y;
  A wdg = 0;
  for (int64_t i = tid; i < N; i += kThreads) wdg += wc[i] * to_acc(gwc[i]);
  wdg = block_sum(wdg);
  A gbeta = 0, coef_key = 0;
  for (int64_t i = tid; i < N; i += kThreads) {
    const A dz = softmax_grad(wc[i], A(to_acc(gwc[i])), wdg);
    const A K = dot[i] / cosine_denominator(kn, rn[i], kinv, rinv[i]);
    gbeta += dz * K;
    const A dK = beta * dz;
    const A P = dK * cosine_grad_scale(kn, rn[i], kinv, rinv[i]);
    const A Q = dK * cosine_grad_scale(kn, rn[i], rinv[i], kinv);
    coef_key += cosine_self_coef(K, rn[i], kn, P);
    cm[i] = cosine_self_coef(K, kn, rn[i], Q);
    cq[i] = Q;
    ck[i] = P;
  }
  Pair<A> res;
  res.x = block_sum(gbeta);
  res.y = block_sum(coef_key);  // also synchronises ck, cq, cm
  return res;
}

// dL/dk_m = sum_i ck_i M~_im - coef_key k~_m (M~_i = M_i rinv_i, k~ = k kinv): lanes over
// columns, warps over rows, warps summed in order.
template <typename T, typename A>
__device__ void key_grad_row(const T* M, const T* key, const A* rinv, A kinv, const A* ck,
                             A coef_key, int64_t N, int64_t W, T* gk) {
  __shared__ A part[kWarps][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t m0 = 0; m0 < W; m0 += 32) {
    const int64_t m = m0 + lane;
    A acc = 0;
    if (m < W) {
      for (int64_t i = warp; i < N; i += kWarps) acc += ck[i] * (A(to_acc(M[i * W + m])) * rinv[i]);
    }
    part[warp][lane] = acc;
    __syncthreads();
    if (warp == 0 && m < W) {
      A s = 0;
      for (int w = 0; w < kWarps; ++w) s += part[w][lane];
      gk[m] = grad_from_acc<T>(s - coef_key * (A(to_acc(key[m])) * kinv));
    }
    __syncthreads();
  }
}

// Circular shift forward (eq. 8) of one row.
template <typename In, typename Sh, typename Out, typename A>
__device__ void shift_row_fwd(const In* in, const Sh* s, int64_t N, int64_t S, Out* out) {
  const int64_t k = (S - 1) / 2;
  for (int64_t i = threadIdx.x; i < N; i += kThreads) {
    A acc = 0;
    for (int64_t j = 0; j < S; ++j) acc += A(to_acc(s[j])) * A(to_acc(in[shift_source(i, j, k, N)]));
    out[i] = from_acc<Out>(acc);
  }
}

// Circular shift backward of one row: gin (Out) and gs (Sh-typed output, S entries).
template <typename G, typename In, typename Sh, typename Out, typename A>
__device__ void shift_row_bwd(const G* gout, const In* in, const Sh* s, int64_t N, int64_t S,
                              Out* gin, Sh* gs) {
  const int64_t k = (S - 1) / 2;
  for (int64_t i = threadIdx.x; i < N; i += kThreads) {
    A acc = 0;
    for (int64_t j = 0; j < S; ++j) acc += A(to_acc(s[j])) * A(to_acc(gout[shift_dest(i, j, k, N)]));
    gin[i] = grad_from_acc<Out>(acc);
  }
  // dL/ds_j: one warp per shift index j (lanes over i, a warp sum in a fixed order). No
  // block-wide reduction (three barriers) per j, so a large S costs ~S*N/256 loads per
  // thread rather than S block reductions.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t j = warp; j < S; j += kWarps) {
    A acc = 0;
    for (int64_t i = lane; i < N; i += 32) {
      acc += A(to_acc(gout[i])) * A(to_acc(in[shift_source(i, j, k, N)]));
    }
    acc = warp_sum(acc);
    if (lane == 0) gs[j] = grad_from_acc<Sh>(acc);
  }
  __syncthreads();
}

// Sharpening forward (eq. 9), scale-free. With r/w non-null, stores r = in / max and the
// output in A (for the backward); otherwise writes the output to out. Returns {max, sum}.
template <typename In, typename Out, typename A>
__device__ Pair<A> sharpen_row_fwd(const In* in, A gamma, int64_t N, A* r, A* w, Out* out) {
  const int tid = threadIdx.x;
  A mx = -INFINITY;
  for (int64_t i = tid; i < N; i += kThreads) mx = fmax(mx, A(to_acc(in[i])));
  mx = sharpen_scale(block_max(mx));
  A sum = 0;
  for (int64_t i = tid; i < N; i += kThreads) {
    const A ri = A(to_acc(in[i])) / mx;
    const A p = sharpen_power(ri, gamma);
    if (r) {
      r[i] = ri;
      w[i] = p;
    }
    sum += p;
  }
  sum = block_sum(sum);
  const A inv = A(1) / fmax(sum, sharpen_tiny<A>());
  for (int64_t i = tid; i < N; i += kThreads) {
    if (r) {
      w[i] *= inv;
    } else {
      out[i] = from_acc<Out>(sharpen_power(A(to_acc(in[i])) / mx, gamma) * inv);
    }
  }
  __syncthreads();
  Pair<A> res;
  res.x = mx;
  res.y = sum;
  return res;
}

// Sharpening backward of one row; returns dL/dgamma (to every thread).
template <typename G, typename Out, typename A>
__device__ A sharpen_row_bwd(const G* gout, const A* r, const A* w, A sum, A mx, A gamma,
                             int64_t N, Out* gin) {
  const int tid = threadIdx.x;
  const A Sc = fmax(sum, sharpen_tiny<A>());
  A wdg = 0;
  if (sum >= sharpen_tiny<A>()) {
    for (int64_t i = tid; i < N; i += kThreads) wdg += w[i] * A(to_acc(gout[i]));
  }
  wdg = block_sum(wdg);
  const A inv_S = A(1) / Sc;
  A ggamma = 0;
  for (int64_t i = tid; i < N; i += kThreads) {
    const A gp = (A(to_acc(gout[i])) - wdg) * inv_S;
    ggamma += gp * sharpen_gamma_term(w[i] * Sc, r[i]);
    gin[i] = grad_from_acc<Out>(gp * sharpen_power_grad(r[i], gamma) / mx);
  }
  return block_sum(ggamma);
}

// ---- kernels ------------------------------------------------------------------------------

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    content_fwd_kernel(const T* M, const T* key, const T* beta, T* out, A* ws, int64_t H,
                       int64_t N, int64_t W) {
  const int64_t bh = blockIdx.x, b = bh / H;
  A* wc = ws + bh * N;
  content_row_fwd<T, A>(M + b * N * W, key + bh * W, A(to_acc(beta[bh])), N, W, nullptr,
                        nullptr, nullptr, wc);
  for (int64_t i = threadIdx.x; i < N; i += kThreads) out[bh * N + i] = from_acc<T>(wc[i]);
}

// dL/dM_im = sum_h (cq_h,i k~_h,m - cm_h,i M~_im), heads in order (k~ = k s_k^-1,
// M~_i = M_i s_i^-1). Per (b, h) at ws + (b*H + h) * stride: cq at cq_off, cm at cm_off, the rows'
// s_i^-1 at rinv_off (head 0's copy is read) and s_k^-1 at kinv_off.
template <typename T, typename A>
__global__ void cosine_memory_grad_kernel(const T* M, const T* key, const A* ws, int64_t stride,
                                          int64_t cq_off, int64_t cm_off, int64_t rinv_off,
                                          int64_t kinv_off, T* gM, int64_t B, int64_t H, int64_t N,
                                          int64_t W) {
  const int64_t total = B * N * W;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = idx % W, i = (idx / W) % N, b = idx / (N * W);
    const A x = A(to_acc(M[idx])) * ws[b * H * stride + rinv_off + i];
    A acc = 0;
    for (int64_t h = 0; h < H; ++h) {
      const A* base = ws + (b * H + h) * stride;
      const A k = A(to_acc(key[(b * H + h) * W + m])) * base[kinv_off];
      acc += base[cq_off + i] * k - base[cm_off + i] * x;
    }
    gM[idx] = grad_from_acc<T>(acc);
  }
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    content_bwd_rows_kernel(const T* G, const T* M, const T* key, const T* beta, T* gK, T* gB,
                            A* ws, int64_t H, int64_t N, int64_t W) {
  const int64_t bh = blockIdx.x, b = bh / H;
  // per (b, h): dot, rn, wc, ck, cm, cq, rinv (N each), kinv (1)
  A *dot = ws + bh * (7 * N + 1), *rn = dot + N, *wc = rn + N, *ck = wc + N, *cm = ck + N,
    *cq = cm + N, *rinv = cq + N;
  const T* Mb = M + b * N * W;
  const A beta_v = to_acc(beta[bh]);
  const Pair<A> kq = content_row_fwd<T, A>(Mb, key + bh * W, beta_v, N, W, dot, rn, rinv, wc);
  if (threadIdx.x == 0) rinv[N] = kq.y;
  const Pair<A> bc =
      content_row_bwd<T, A>(G + bh * N, wc, dot, rn, rinv, kq, beta_v, N, ck, cq, cm);
  if (threadIdx.x == 0) gB[bh] = grad_from_acc<T>(bc.x);
  key_grad_row<T, A>(Mb, key + bh * W, rinv, kq.y, ck, bc.y, N, W, gK + bh * W);
}

template <typename T, typename A>
__global__ void interpolate_fwd_kernel(const T* wc, const T* wp, const T* gate, T* out,
                                       int64_t BH, int64_t N) {
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < BH * N;
       idx += int64_t(gridDim.x) * blockDim.x) {
    out[idx] = from_acc<T>(interpolate(A(to_acc(wc[idx])), A(to_acc(wp[idx])),
                                       A(to_acc(gate[idx / N]))));
  }
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    interpolate_bwd_kernel(const T* G, const T* wc, const T* wp, const T* gate, T* gc, T* gp,
                           T* gg, int64_t N) {
  const int64_t bh = blockIdx.x;
  const A g = to_acc(gate[bh]);
  A acc = 0;
  for (int64_t i = threadIdx.x; i < N; i += kThreads) {
    const int64_t idx = bh * N + i;
    const A go = to_acc(G[idx]);
    acc += (A(to_acc(wc[idx])) - A(to_acc(wp[idx]))) * go;
    gc[idx] = grad_from_acc<T>(g * go);
    gp[idx] = grad_from_acc<T>((A(1) - g) * go);
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) gg[bh] = grad_from_acc<T>(acc);
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    shift_fwd_kernel(const T* w, const T* shift, T* out, int64_t N, int64_t S) {
  const int64_t bh = blockIdx.x;
  shift_row_fwd<T, T, T, A>(w + bh * N, shift + bh * S, N, S, out + bh * N);
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    shift_bwd_kernel(const T* G, const T* w, const T* shift, T* gw, T* gs, int64_t N,
                     int64_t S) {
  const int64_t bh = blockIdx.x;
  shift_row_bwd<T, T, T, T, A>(G + bh * N, w + bh * N, shift + bh * S, N, S, gw + bh * N,
                               gs + bh * S);
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    sharpen_fwd_kernel(const T* w, const T* gamma, T* out, int64_t N) {
  const int64_t bh = blockIdx.x;
  sharpen_row_fwd<T, T, A>(w + bh * N, A(to_acc(gamma[bh])), N, nullptr, nullptr, out + bh * N);
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    sharpen_bwd_kernel(const T* G, const T* w, const T* gamma, T* gw, T* gy, A* ws, int64_t N) {
  const int64_t bh = blockIdx.x;
  A *r = ws + bh * 2 * N, *wo = r + N;
  const A gamma_v = to_acc(gamma[bh]);
  const Pair<A> ms = sharpen_row_fwd<T, T, A>(w + bh * N, gamma_v, N, r, wo, nullptr);
  const A ggamma = sharpen_row_bwd<T, T, A>(G + bh * N, r, wo, ms.y, ms.x, gamma_v, N, gw + bh * N);
  if (threadIdx.x == 0) gy[bh] = grad_from_acc<T>(ggamma);
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    address_fwd_kernel(const T* M, const T* key, const T* beta, const T* gate, const T* shift,
                       const T* gamma, const T* wp, T* out, A* ws, int64_t H, int64_t N,
                       int64_t W, int64_t S) {
  const int64_t bh = blockIdx.x, b = bh / H;
  A *wc = ws + bh * 3 * N, *wg = wc + N, *wt = wg + N;
  content_row_fwd<T, A>(M + b * N * W, key + bh * W, A(to_acc(beta[bh])), N, W, nullptr,
                        nullptr, nullptr, wc);
  const A g = to_acc(gate[bh]);
  for (int64_t i = threadIdx.x; i < N; i += kThreads) {
    wg[i] = interpolate(wc[i], A(to_acc(wp[bh * N + i])), g);
  }
  __syncthreads();
  shift_row_fwd<A, T, A, A>(wg, shift + bh * S, N, S, wt);
  __syncthreads();
  sharpen_row_fwd<A, T, A>(wt, A(to_acc(gamma[bh])), N, nullptr, nullptr, out + bh * N);
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    address_bwd_rows_kernel(const T* G, const T* M, const T* key, const T* beta, const T* gate,
                            const T* shift, const T* gamma, const T* wp, T* gK, T* gB, T* gG,
                            T* gS, T* gY, T* gP, A* ws, int64_t H, int64_t N, int64_t W,
                            int64_t S) {
  const int64_t bh = blockIdx.x, b = bh / H;
  // per (b, h): dot, rn, wc, wg, r, w, ck, cm, cq, rinv (N each), kinv (1)
  A *dot = ws + bh * (10 * N + 1), *rn = dot + N, *wc = rn + N, *wg = wc + N, *r = wg + N,
    *w = r + N, *ck = w + N, *cm = ck + N, *cq = cm + N, *rinv = cq + N;
  const T* Mb = M + b * N * W;
  const A beta_v = to_acc(beta[bh]), g = to_acc(gate[bh]), gamma_v = to_acc(gamma[bh]);
  // ---- recompute the forward
  const Pair<A> kq = content_row_fwd<T, A>(Mb, key + bh * W, beta_v, N, W, dot, rn, rinv, wc);
  if (threadIdx.x == 0) rinv[N] = kq.y;
  for (int64_t i = threadIdx.x; i < N; i += kThreads) {
    wg[i] = interpolate(wc[i], A(to_acc(wp[bh * N + i])), g);
  }
  __syncthreads();
  shift_row_fwd<A, T, A, A>(wg, shift + bh * S, N, S, ck);  // ck = w~ for now
  __syncthreads();
  const Pair<A> ms = sharpen_row_fwd<A, A, A>(ck, gamma_v, N, r, w, nullptr);
  // ---- backward: sharpen -> shift -> interpolation -> content
  const A ggamma = sharpen_row_bwd<T, A, A>(G + bh * N, r, w, ms.y, ms.x, gamma_v, N, ck);
  if (threadIdx.x == 0) gY[bh] = grad_from_acc<T>(ggamma);
  __syncthreads();
  shift_row_bwd<A, A, T, A, A>(ck, wg, shift + bh * S, N, S, cm, gS + bh * S);  // cm = dL/dwg
  A gg = 0;
  for (int64_t i = threadIdx.x; i < N; i += kThreads) {
    const A gwg = cm[i];
    gg += (wc[i] - A(to_acc(wp[bh * N + i]))) * gwg;
    gP[bh * N + i] = grad_from_acc<T>((A(1) - g) * gwg);
    cm[i] = g * gwg;  // dL/dwc
  }
  gg = block_sum(gg);
  if (threadIdx.x == 0) gG[bh] = grad_from_acc<T>(gg);
  const Pair<A> bc = content_row_bwd<A, A>(cm, wc, dot, rn, rinv, kq, beta_v, N, ck, cq, cm);
  if (threadIdx.x == 0) gB[bh] = grad_from_acc<T>(bc.x);
  key_grad_row<T, A>(Mb, key + bh * W, rinv, kq.y, ck, bc.y, N, W, gK + bh * W);
}

// r_bh,m = sum_i w_bh,i M_b,i,m: lanes over columns, 8 row slices summed in order.
template <typename T, typename A>
__global__ void read_fwd_kernel(const T* M, const T* w, T* out, int64_t H, int64_t N,
                                int64_t W) {
  __shared__ A part[8][32];
  const int64_t bh = blockIdx.x, b = bh / H, m = blockIdx.y * 32 + threadIdx.x;
  A acc = 0;
  if (m < W) {
    for (int64_t i = threadIdx.y; i < N; i += 8) {
      acc += A(to_acc(w[bh * N + i])) * A(to_acc(M[(b * N + i) * W + m]));
    }
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && m < W) {
    A s = 0;
    for (int y = 0; y < 8; ++y) s += part[y][threadIdx.x];
    out[bh * W + m] = from_acc<T>(s);
  }
}

// dL/dw_bh,i = M_b,i . rbar_bh: one warp per (b, i).
template <typename T, typename A>
__global__ void read_bwd_w_kernel(const T* G, const T* M, T* gw, int64_t B, int64_t H, int64_t N,
                                  int64_t W) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  if (row >= B * N) return;  // whole warps exit together
  const int64_t b = row / N, i = row % N;
  for (int64_t h = 0; h < H; ++h) {
    A acc = 0;
    for (int64_t m = lane; m < W; m += 32) {
      acc += A(to_acc(M[row * W + m])) * A(to_acc(G[(b * H + h) * W + m]));
    }
    acc = warp_sum(acc);
    if (lane == 0) gw[(b * H + h) * N + i] = grad_from_acc<T>(acc);
  }
}

// dL/dM_b,i,m = sum_h w_bh,i rbar_bh,m.
template <typename T, typename A>
__global__ void read_bwd_m_kernel(const T* G, const T* w, T* gM, int64_t B, int64_t H, int64_t N,
                                  int64_t W) {
  const int64_t total = B * N * W;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = idx % W, i = (idx / W) % N, b = idx / (N * W);
    A acc = 0;
    for (int64_t h = 0; h < H; ++h) {
      acc += A(to_acc(w[(b * H + h) * N + i])) * A(to_acc(G[(b * H + h) * W + m]));
    }
    gM[idx] = grad_from_acc<T>(acc);
  }
}

template <typename T, typename A>
__global__ void write_fwd_kernel(const T* M, const T* w, const T* E, const T* Ad, T* out,
                                 int64_t B, int64_t H, int64_t N, int64_t W) {
  const int64_t total = B * N * W;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = idx % W, i = (idx / W) % N, b = idx / (N * W);
    A keep = 1, add = 0;
    for (int64_t h = 0; h < H; ++h) {
      const int64_t bh = b * H + h;
      const A wv = to_acc(w[bh * N + i]);
      keep *= erase_factor(wv, A(to_acc(E[bh * W + m])));
      add += wv * A(to_acc(Ad[bh * W + m]));
    }
    out[idx] = from_acc<T>(A(to_acc(M[idx])) * keep + add);
  }
}

// Product of the keep factors of every head but `skip` at (b, i, m) (skip = -1: all heads).
template <typename T, typename A>
__device__ __forceinline__ A keep_product(const T* w, const T* E, int64_t b, int64_t i, int64_t m,
                                          int64_t skip, int64_t H, int64_t N, int64_t W) {
  A p = 1;
  for (int64_t h = 0; h < H; ++h) {
    if (h == skip) continue;
    p *= erase_factor(A(to_acc(w[(b * H + h) * N + i])), A(to_acc(E[(b * H + h) * W + m])));
  }
  return p;
}

// dL/dM and dL/dw of the write: one warp per (b, i); products over the other heads are formed
// directly (never divided out: 1 - w e can be exactly 0).
template <typename T, typename A>
__global__ void write_bwd_rows_kernel(const T* G, const T* M, const T* w, const T* E,
                                      const T* Ad, T* gM, T* gw, int64_t B, int64_t H, int64_t N,
                                      int64_t W) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  if (row >= B * N) return;
  const int64_t b = row / N, i = row % N;
  for (int64_t m = lane; m < W; m += 32) {
    const A p = keep_product<T, A>(w, E, b, i, m, -1, H, N, W);
    gM[row * W + m] = grad_from_acc<T>(A(to_acc(G[row * W + m])) * p);
  }
  for (int64_t h = 0; h < H; ++h) {
    const int64_t bh = b * H + h;
    A acc = 0;
    for (int64_t m = lane; m < W; m += 32) {
      const A others = keep_product<T, A>(w, E, b, i, m, h, H, N, W);
      acc += write_w_grad_term(A(to_acc(G[row * W + m])), A(to_acc(M[row * W + m])),
                               A(to_acc(E[bh * W + m])), A(to_acc(Ad[bh * W + m])), others);
    }
    acc = warp_sum(acc);
    if (lane == 0) gw[bh * N + i] = grad_from_acc<T>(acc);
  }
}

// dL/de and dL/da of the write: lanes over columns, 8 row slices summed in order.
template <typename T, typename A>
__global__ void write_bwd_ea_kernel(const T* G, const T* M, const T* w, const T* E, T* ge, T* ga,
                                    int64_t H, int64_t N, int64_t W) {
  __shared__ A part_e[8][32];
  __shared__ A part_a[8][32];
  const int64_t bh = blockIdx.x, b = bh / H, h = bh % H, m = blockIdx.y * 32 + threadIdx.x;
  A acc_e = 0, acc_a = 0;
  if (m < W) {
    for (int64_t i = threadIdx.y; i < N; i += 8) {
      const A g = to_acc(G[(b * N + i) * W + m]);
      const A wv = to_acc(w[bh * N + i]);
      const A others = keep_product<T, A>(w, E, b, i, m, h, H, N, W);
      acc_e += write_e_grad_term(g, A(to_acc(M[(b * N + i) * W + m])), wv, others);
      acc_a += g * wv;
    }
  }
  part_e[threadIdx.y][threadIdx.x] = acc_e;
  part_a[threadIdx.y][threadIdx.x] = acc_a;
  __syncthreads();
  if (threadIdx.y == 0 && m < W) {
    A se = 0, sa = 0;
    for (int y = 0; y < 8; ++y) {
      se += part_e[y][threadIdx.x];
      sa += part_a[y][threadIdx.x];
    }
    ge[bh * W + m] = grad_from_acc<T>(se);
    ga[bh * W + m] = grad_from_acc<T>(sa);
  }
}

// ---- launch helpers -------------------------------------------------------------------------

unsigned elementwise_blocks(int64_t total) {
  const int64_t blocks = (total + 255) / 256;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}
unsigned warp_row_blocks(int64_t rows) {  // 8 warps (rows) per 256-thread block
  return static_cast<unsigned>((rows + 7) / 8);
}

#define NTM_LAUNCH_CHECK()                        \
  do {                                            \
    const cudaError_t err_ = cudaGetLastError();  \
    if (err_ != cudaSuccess) return err_;         \
  } while (0)

// Calls f.template operator()<T, A>() for the element type t.
template <typename F>
cudaError_t dispatch(DType t, F&& f) {
  switch (t) {
    case DType::Float32:
      return f(float(), float());
    case DType::Float64:
      return f(double(), double());
    case DType::Float16:
      return f(__half(), float());
    case DType::BFloat16:
      return f(__nv_bfloat16(), float());
  }
  return cudaErrorInvalidValue;
}

#define NTM_TYPES(tv, av) \
  using T = decltype(tv); \
  using A = decltype(av)

template <typename T>
const T* cp(const void* p) {
  return static_cast<const T*>(p);
}
template <typename T>
T* mp(void* p) {
  return static_cast<T*>(p);
}

}  // namespace

// ---- launchers ------------------------------------------------------------------------------

cudaError_t content_address_fwd(DType t, const void* memory, const void* key, const void* beta,
                                void* out, void* workspace, int64_t B, int64_t H, int64_t N,
                                int64_t W, cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    content_fwd_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(
        cp<T>(memory), cp<T>(key), cp<T>(beta), mp<T>(out), mp<A>(workspace), H, N, W);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t content_address_bwd(DType t, const void* grad, const void* memory, const void* key,
                                const void* beta, void* g_memory, void* g_key, void* g_beta,
                                void* workspace, int64_t B, int64_t H, int64_t N, int64_t W,
                                cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    content_bwd_rows_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(
        cp<T>(grad), cp<T>(memory), cp<T>(key), cp<T>(beta), mp<T>(g_key), mp<T>(g_beta),
        mp<A>(workspace), H, N, W);
    NTM_LAUNCH_CHECK();
    cosine_memory_grad_kernel<T, A><<<elementwise_blocks(B * N * W), 256, 0, stream>>>(
        cp<T>(memory), cp<T>(key), mp<A>(workspace), 7 * N + 1, 5 * N, 4 * N, 6 * N, 7 * N,
        mp<T>(g_memory), B, H, N, W);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t interpolate_fwd(DType t, const void* w_content, const void* w_prev, const void* gate,
                            void* out, int64_t B, int64_t H, int64_t N, cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    interpolate_fwd_kernel<T, A><<<elementwise_blocks(B * H * N), 256, 0, stream>>>(
        cp<T>(w_content), cp<T>(w_prev), cp<T>(gate), mp<T>(out), B * H, N);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t interpolate_bwd(DType t, const void* grad, const void* w_content, const void* w_prev,
                            const void* gate, void* g_content, void* g_prev, void* g_gate,
                            int64_t B, int64_t H, int64_t N, cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    interpolate_bwd_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(
        cp<T>(grad), cp<T>(w_content), cp<T>(w_prev), cp<T>(gate), mp<T>(g_content),
        mp<T>(g_prev), mp<T>(g_gate), N);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t shift_convolve_fwd(DType t, const void* w, const void* shift, void* out, int64_t B,
                               int64_t H, int64_t N, int64_t S, cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    shift_fwd_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(cp<T>(w), cp<T>(shift),
                                                                     mp<T>(out), N, S);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t shift_convolve_bwd(DType t, const void* grad, const void* w, const void* shift,
                               void* g_w, void* g_shift, int64_t B, int64_t H, int64_t N,
                               int64_t S, cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    shift_bwd_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(
        cp<T>(grad), cp<T>(w), cp<T>(shift), mp<T>(g_w), mp<T>(g_shift), N, S);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t sharpen_fwd(DType t, const void* w, const void* gamma, void* out, int64_t B,
                        int64_t H, int64_t N, cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    sharpen_fwd_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(cp<T>(w), cp<T>(gamma),
                                                                       mp<T>(out), N);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t sharpen_bwd(DType t, const void* grad, const void* w, const void* gamma, void* g_w,
                        void* g_gamma, void* workspace, int64_t B, int64_t H, int64_t N,
                        cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    sharpen_bwd_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(
        cp<T>(grad), cp<T>(w), cp<T>(gamma), mp<T>(g_w), mp<T>(g_gamma), mp<A>(workspace), N);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t address_fwd(DType t, const void* memory, const void* key, const void* beta,
                        const void* gate, const void* shift, const void* gamma,
                        const void* w_prev, void* out, void* workspace, int64_t B, int64_t H,
                        int64_t N, int64_t W, int64_t S, cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    address_fwd_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(
        cp<T>(memory), cp<T>(key), cp<T>(beta), cp<T>(gate), cp<T>(shift), cp<T>(gamma),
        cp<T>(w_prev), mp<T>(out), mp<A>(workspace), H, N, W, S);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t address_bwd(DType t, const void* grad, const void* memory, const void* key,
                        const void* beta, const void* gate, const void* shift, const void* gamma,
                        const void* w_prev, void* g_memory, void* g_key, void* g_beta,
                        void* g_gate, void* g_shift, void* g_gamma, void* g_w_prev,
                        void* workspace, int64_t B, int64_t H, int64_t N, int64_t W, int64_t S,
                        cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    address_bwd_rows_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(
        cp<T>(grad), cp<T>(memory), cp<T>(key), cp<T>(beta), cp<T>(gate), cp<T>(shift),
        cp<T>(gamma), cp<T>(w_prev), mp<T>(g_key), mp<T>(g_beta), mp<T>(g_gate), mp<T>(g_shift),
        mp<T>(g_gamma), mp<T>(g_w_prev), mp<A>(workspace), H, N, W, S);
    NTM_LAUNCH_CHECK();
    cosine_memory_grad_kernel<T, A><<<elementwise_blocks(B * N * W), 256, 0, stream>>>(
        cp<T>(memory), cp<T>(key), mp<A>(workspace), 10 * N + 1, 8 * N, 7 * N, 9 * N, 10 * N,
        mp<T>(g_memory), B, H, N, W);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t read_fwd(DType t, const void* memory, const void* w, void* out, int64_t B, int64_t H,
                     int64_t N, int64_t W, cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    const dim3 grid(unsigned(B * H), unsigned((W + 31) / 32)), block(32, 8);
    read_fwd_kernel<T, A><<<grid, block, 0, stream>>>(cp<T>(memory), cp<T>(w), mp<T>(out), H, N,
                                                      W);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t read_bwd(DType t, const void* grad, const void* memory, const void* w,
                     void* g_memory, void* g_w, int64_t B, int64_t H, int64_t N, int64_t W,
                     cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    read_bwd_w_kernel<T, A><<<warp_row_blocks(B * N), 256, 0, stream>>>(
        cp<T>(grad), cp<T>(memory), mp<T>(g_w), B, H, N, W);
    NTM_LAUNCH_CHECK();
    read_bwd_m_kernel<T, A><<<elementwise_blocks(B * N * W), 256, 0, stream>>>(
        cp<T>(grad), cp<T>(w), mp<T>(g_memory), B, H, N, W);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t write_fwd(DType t, const void* memory, const void* w, const void* erase,
                      const void* add, void* out, int64_t B, int64_t H, int64_t N, int64_t W,
                      cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    write_fwd_kernel<T, A><<<elementwise_blocks(B * N * W), 256, 0, stream>>>(
        cp<T>(memory), cp<T>(w), cp<T>(erase), cp<T>(add), mp<T>(out), B, H, N, W);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

cudaError_t write_bwd(DType t, const void* grad, const void* memory, const void* w,
                      const void* erase, const void* add, void* g_memory, void* g_w,
                      void* g_erase, void* g_add, int64_t B, int64_t H, int64_t N, int64_t W,
                      cudaStream_t stream) {
  return dispatch(t, [&](auto tv, auto av) {
    NTM_TYPES(tv, av);
    write_bwd_rows_kernel<T, A><<<warp_row_blocks(B * N), 256, 0, stream>>>(
        cp<T>(grad), cp<T>(memory), cp<T>(w), cp<T>(erase), cp<T>(add), mp<T>(g_memory),
        mp<T>(g_w), B, H, N, W);
    NTM_LAUNCH_CHECK();
    const dim3 grid(unsigned(B * H), unsigned((W + 31) / 32)), block(32, 8);
    write_bwd_ea_kernel<T, A><<<grid, block, 0, stream>>>(cp<T>(grad), cp<T>(memory), cp<T>(w),
                                                          cp<T>(erase), mp<T>(g_erase),
                                                          mp<T>(g_add), H, N, W);
    NTM_LAUNCH_CHECK();
    return cudaSuccess;
  });
}

}  // namespace cuda
}  // namespace ntm_fast
