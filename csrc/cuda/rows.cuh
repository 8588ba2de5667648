// Block-level row functions of the memory ops (all threads of a kThreads block call them): the
// content addressing forward and backward of one (batch, head) row, the key gradient, circular
// shift and sharpening, forward and backward. Shared by content_address.cu, shift_convolve.cu,
// sharpen.cu and the fused address.cu, so a stage's device math exists once; per-element math
// is csrc/ntm_math.h (shared with the CPU code).
#pragma once

#include "device.cuh"

namespace ntm_fast {
namespace cuda {

namespace {

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

}  // namespace

// dL/dM of the content backward, summed over heads in order, from the rows `layout` gives each
// (batch, head) of `ws` (content_address_bwd, address_bwd). Defined in content_address.cu.
template <typename T, typename A>
cudaError_t cosine_memory_grad(const T* M, const T* key, const A* ws,
                               const CosineBwdWorkspace& layout, T* gM, int64_t B, int64_t H,
                               int64_t N, int64_t W, cudaStream_t stream);

}  // namespace cuda
}  // namespace ntm_fast
