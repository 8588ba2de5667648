// CUDA write (eqs. 3-4): M' = M prod_h (1 - w_h e_h) + sum_h w_h a_h, one thread per element,
// heads in order. The backward forms the products over the other heads directly (never divides
// by 1 - w e, which can be exactly 0): one warp per (batch, row) for dL/dM and dL/dw; lanes
// over columns and 8 row slices summed in order for dL/de and dL/da.
#include "device.cuh"
#include "launchers.h"

namespace ntm_fast {
namespace cuda {
namespace {

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

}  // namespace

template <typename T>
cudaError_t write_fwd(const WriteFwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  write_fwd_kernel<D, A><<<elementwise_blocks(p.B * p.N * p.W), 256, 0, stream>>>(
      dev(p.memory), dev(p.w), dev(p.erase), dev(p.add), dev(p.out), p.B, p.H, p.N, p.W);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

template <typename T>
cudaError_t write_bwd(const WriteBwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  write_bwd_rows_kernel<D, A><<<warp_row_blocks(p.B * p.N), 256, 0, stream>>>(
      dev(p.grad), dev(p.memory), dev(p.w), dev(p.erase), dev(p.add), dev(p.g_memory),
      dev(p.g_w), p.B, p.H, p.N, p.W);
  NTM_LAUNCH_CHECK();
  const dim3 grid(unsigned(p.B * p.H), unsigned((p.W + 31) / 32)), block(32, 8);
  write_bwd_ea_kernel<D, A><<<grid, block, 0, stream>>>(dev(p.grad), dev(p.memory), dev(p.w),
                                                        dev(p.erase), dev(p.g_erase),
                                                        dev(p.g_add), p.H, p.N, p.W);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

NTM_INSTANTIATE_LAUNCHER(write_fwd, WriteFwdParams);
NTM_INSTANTIATE_LAUNCHER(write_bwd, WriteBwdParams);

}  // namespace cuda
}  // namespace ntm_fast
