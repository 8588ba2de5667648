// CUDA shift_convolve (eq. 8): one kThreads block per (batch, head) row (rows.cuh).
#include "launchers.h"
#include "rows.cuh"

namespace ntm_fast {
namespace cuda {
namespace {

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    shift_convolve_fwd_kernel(const T* w, const T* shift, T* out, int64_t N, int64_t S) {
  const int64_t bh = blockIdx.x;
  shift_row_fwd<T, T, T, A>(w + bh * N, shift + bh * S, N, S, out + bh * N);
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    shift_convolve_bwd_kernel(const T* G, const T* w, const T* shift, T* gw, T* gs, int64_t N,
                     int64_t S) {
  const int64_t bh = blockIdx.x;
  shift_row_bwd<T, T, T, T, A>(G + bh * N, w + bh * N, shift + bh * S, N, S, gw + bh * N,
                               gs + bh * S);
}

}  // namespace

template <typename T>
cudaError_t shift_convolve_fwd(const ShiftConvolveFwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  shift_convolve_fwd_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.w), dev(p.shift), dev(p.out), p.N, p.S);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

template <typename T>
cudaError_t shift_convolve_bwd(const ShiftConvolveBwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  shift_convolve_bwd_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.grad), dev(p.w), dev(p.shift), dev(p.g_w), dev(p.g_shift), p.N, p.S);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

NTM_INSTANTIATE_LAUNCHER(shift_convolve_fwd, ShiftConvolveFwdParams);
NTM_INSTANTIATE_LAUNCHER(shift_convolve_bwd, ShiftConvolveBwdParams);

}  // namespace cuda
}  // namespace ntm_fast
