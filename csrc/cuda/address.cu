// CUDA address: the fused addressing pipeline, eqs. (5)-(9), one kThreads block per
// (batch, head): content addressing, interpolation, circular shift and sharpening on rows in
// the workspace (AddressFwdWorkspace / AddressBwdWorkspace of params.h), with the stage row
// functions of rows.cuh. The backward recomputes the forward, runs the stages backwards in
// reverse and leaves dL/dM to cosine_memory_grad (content_address.cu).
#include "launchers.h"
#include "rows.cuh"

namespace ntm_fast {
namespace cuda {
namespace {

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    address_fwd_kernel(const T* M, const T* key, const T* beta, const T* gate, const T* shift,
                       const T* gamma, const T* wp, T* out, A* ws, int64_t H, int64_t N,
                       int64_t W, int64_t S) {
  const int64_t bh = blockIdx.x, b = bh / H;
  const AddressFwdWorkspace L{N};
  A* base = ws + L.block(bh);
  A *wc = base + L.wc(), *wg = base + L.wg(), *wt = base + L.wt();
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
  const AddressBwdWorkspace L(N);
  A* base = ws + L.block(bh);
  A *dot = base + L.dot(), *rn = base + L.rn(), *wc = base + L.wc(), *wg = base + L.wg(),
    *r = base + L.r(), *w = base + L.w(), *ck = base + L.ck(), *cm = base + L.cm(),
    *cq = base + L.cq(), *rinv = base + L.rinv();
  const T* Mb = M + b * N * W;
  const A beta_v = to_acc(beta[bh]), g = to_acc(gate[bh]), gamma_v = to_acc(gamma[bh]);
  // ---- recompute the forward
  const Pair<A> kq = content_row_fwd<T, A>(Mb, key + bh * W, beta_v, N, W, dot, rn, rinv, wc);
  if (threadIdx.x == 0) rinv[N] = kq.y;  // kinv, right after the rinv row (register use)
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

}  // namespace

template <typename T>
cudaError_t address_fwd(const AddressFwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  address_fwd_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.memory), dev(p.key), dev(p.beta), dev(p.gate), dev(p.shift), dev(p.gamma),
      dev(p.w_prev), dev(p.out), p.workspace, p.H, p.N, p.W, p.S);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

template <typename T>
cudaError_t address_bwd(const AddressBwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  address_bwd_rows_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.grad), dev(p.memory), dev(p.key), dev(p.beta), dev(p.gate), dev(p.shift),
      dev(p.gamma), dev(p.w_prev), dev(p.g_key), dev(p.g_beta), dev(p.g_gate), dev(p.g_shift),
      dev(p.g_gamma), dev(p.g_w_prev), p.workspace, p.H, p.N, p.W, p.S);
  NTM_LAUNCH_CHECK();
  return cosine_memory_grad(dev(p.memory), dev(p.key), p.workspace, AddressBwdWorkspace(p.N),
                            dev(p.g_memory), p.B, p.H, p.N, p.W, stream);
}

NTM_INSTANTIATE_LAUNCHER(address_fwd, AddressFwdParams);
NTM_INSTANTIATE_LAUNCHER(address_bwd, AddressBwdParams);

}  // namespace cuda
}  // namespace ntm_fast
