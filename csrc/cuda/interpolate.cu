// CUDA interpolate (eq. 7): forward one thread per element, backward one kThreads block per
// (batch, head) (dL/dgate is a block sum in a fixed order).
#include "launchers.h"
#include "device.cuh"

namespace ntm_fast {
namespace cuda {
namespace {

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

}  // namespace

template <typename T>
cudaError_t interpolate_fwd(const InterpolateFwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  interpolate_fwd_kernel<D, A><<<elementwise_blocks(p.B * p.H * p.N), 256, 0, stream>>>(
      dev(p.w_content), dev(p.w_prev), dev(p.gate), dev(p.out), p.B * p.H, p.N);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

template <typename T>
cudaError_t interpolate_bwd(const InterpolateBwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  interpolate_bwd_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.grad), dev(p.w_content), dev(p.w_prev), dev(p.gate), dev(p.g_content),
      dev(p.g_prev), dev(p.g_gate), p.N);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

NTM_INSTANTIATE_LAUNCHER(interpolate_fwd, InterpolateFwdParams);
NTM_INSTANTIATE_LAUNCHER(interpolate_bwd, InterpolateBwdParams);

}  // namespace cuda
}  // namespace ntm_fast
