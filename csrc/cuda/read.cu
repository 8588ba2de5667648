// CUDA read (eq. 2): r_bh = sum_i w_bh,i M_b,i. Forward: lanes over columns, 8 row slices
// summed in order; backward: one warp per (batch, row) for dL/dw, one thread per element of
// dL/dM (heads in order).
#include "device.cuh"
#include "launchers.h"

namespace ntm_fast {
namespace cuda {
namespace {

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

}  // namespace

template <typename T>
cudaError_t read_fwd(const ReadFwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  const dim3 grid(unsigned(p.B * p.H), unsigned((p.W + 31) / 32)), block(32, 8);
  read_fwd_kernel<D, A><<<grid, block, 0, stream>>>(dev(p.memory), dev(p.w), dev(p.out), p.H, p.N,
                                                    p.W);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

template <typename T>
cudaError_t read_bwd(const ReadBwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  read_bwd_w_kernel<D, A><<<warp_row_blocks(p.B * p.N), 256, 0, stream>>>(
      dev(p.grad), dev(p.memory), dev(p.g_w), p.B, p.H, p.N, p.W);
  NTM_LAUNCH_CHECK();
  read_bwd_m_kernel<D, A><<<elementwise_blocks(p.B * p.N * p.W), 256, 0, stream>>>(
      dev(p.grad), dev(p.w), dev(p.g_memory), p.B, p.H, p.N, p.W);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

NTM_INSTANTIATE_LAUNCHER(read_fwd, ReadFwdParams);
NTM_INSTANTIATE_LAUNCHER(read_bwd, ReadBwdParams);

}  // namespace cuda
}  // namespace ntm_fast
