// CUDA sharpen (eq. 9), scale-free: one kThreads block per (batch, head) row (rows.cuh); the
// backward recomputes the forward into its workspace (SharpenBwdWorkspace of params.h).
#include "launchers.h"
#include "rows.cuh"

namespace ntm_fast {
namespace cuda {
namespace {

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
  const SharpenBwdWorkspace L{N};
  A* base = ws + L.block(bh);
  A *r = base + L.r(), *wo = base + L.w();
  const A gamma_v = to_acc(gamma[bh]);
  const Pair<A> ms = sharpen_row_fwd<T, T, A>(w + bh * N, gamma_v, N, r, wo, nullptr);
  const A ggamma = sharpen_row_bwd<T, T, A>(G + bh * N, r, wo, ms.y, ms.x, gamma_v, N, gw + bh * N);
  if (threadIdx.x == 0) gy[bh] = grad_from_acc<T>(ggamma);
}

}  // namespace

template <typename T>
cudaError_t sharpen_fwd(const SharpenFwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  sharpen_fwd_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.w), dev(p.gamma), dev(p.out), p.N);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

template <typename T>
cudaError_t sharpen_bwd(const SharpenBwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  sharpen_bwd_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.grad), dev(p.w), dev(p.gamma), dev(p.g_w), dev(p.g_gamma), p.workspace, p.N);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

NTM_INSTANTIATE_LAUNCHER(sharpen_fwd, SharpenFwdParams);
NTM_INSTANTIATE_LAUNCHER(sharpen_bwd, SharpenBwdParams);

}  // namespace cuda
}  // namespace ntm_fast
