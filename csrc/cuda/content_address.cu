// CUDA content_address (eqs. 5-6): one kThreads block per (batch, head), any N (the block
// strides over it), per-row intermediates in the workspace (ContentFwdWorkspace,
// ContentBwdWorkspace of params.h). Also the memory gradient of the content backward
// (cosine_memory_grad), which address_bwd shares: one thread per element of dL/dM, heads summed
// in order (deterministic, no atomics).
#include "launchers.h"
#include "rows.cuh"

namespace ntm_fast {
namespace cuda {
namespace {

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    content_address_fwd_kernel(const T* M, const T* key, const T* beta, T* out, A* ws, int64_t H,
                               int64_t N, int64_t W) {
  const int64_t bh = blockIdx.x, b = bh / H;
  const ContentFwdWorkspace L{N};
  A* wc = ws + L.block(bh) + L.wc();
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
    content_address_bwd_rows_kernel(const T* G, const T* M, const T* key, const T* beta, T* gK,
                                    T* gB, A* ws, int64_t H, int64_t N, int64_t W) {
  const int64_t bh = blockIdx.x, b = bh / H;
  const ContentBwdWorkspace L(N);
  A* base = ws + L.block(bh);
  A *dot = base + L.dot(), *rn = base + L.rn(), *wc = base + L.wc(), *ck = base + L.ck(),
    *cm = base + L.cm(), *cq = base + L.cq(), *rinv = base + L.rinv();
  const T* Mb = M + b * N * W;
  const A beta_v = to_acc(beta[bh]);
  const Pair<A> kq = content_row_fwd<T, A>(Mb, key + bh * W, beta_v, N, W, dot, rn, rinv, wc);
  if (threadIdx.x == 0) rinv[N] = kq.y;  // kinv, right after the rinv row (register use)
  const Pair<A> bc =
      content_row_bwd<T, A>(G + bh * N, wc, dot, rn, rinv, kq, beta_v, N, ck, cq, cm);
  if (threadIdx.x == 0) gB[bh] = grad_from_acc<T>(bc.x);
  key_grad_row<T, A>(Mb, key + bh * W, rinv, kq.y, ck, bc.y, N, W, gK + bh * W);
}

}  // namespace

template <typename T, typename A>
cudaError_t cosine_memory_grad(const T* M, const T* key, const A* ws,
                               const CosineBwdWorkspace& layout, T* gM, int64_t B, int64_t H,
                               int64_t N, int64_t W, cudaStream_t stream) {
  cosine_memory_grad_kernel<T, A><<<elementwise_blocks(B * N * W), 256, 0, stream>>>(
      M, key, ws, layout.stride(), layout.cq(), layout.cm(), layout.rinv(), layout.kinv(), gM, B,
      H, N, W);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}
#define NTM_INSTANTIATE_COSINE(T, A)                                                    \
  template cudaError_t cosine_memory_grad<T, A>(const T*, const T*, const A*,           \
                                                const CosineBwdWorkspace&, T*, int64_t, \
                                                int64_t, int64_t, int64_t, cudaStream_t)
NTM_INSTANTIATE_COSINE(float, float);
NTM_INSTANTIATE_COSINE(double, double);
NTM_INSTANTIATE_COSINE(__half, float);
NTM_INSTANTIATE_COSINE(__nv_bfloat16, float);
#undef NTM_INSTANTIATE_COSINE

template <typename T>
cudaError_t content_address_fwd(const ContentAddressFwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  content_address_fwd_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.memory), dev(p.key), dev(p.beta), dev(p.out), p.workspace, p.H, p.N, p.W);
  NTM_LAUNCH_CHECK();
  return cudaSuccess;
}

template <typename T>
cudaError_t content_address_bwd(const ContentAddressBwdParams<T>& p, cudaStream_t stream) {
  using D = dev_t<T>;
  using A = acc_t<T>;
  content_address_bwd_rows_kernel<D, A><<<unsigned(p.B * p.H), kThreads, 0, stream>>>(
      dev(p.grad), dev(p.memory), dev(p.key), dev(p.beta), dev(p.g_key), dev(p.g_beta),
      p.workspace, p.H, p.N, p.W);
  NTM_LAUNCH_CHECK();
  return cosine_memory_grad(dev(p.memory), dev(p.key), p.workspace, ContentBwdWorkspace(p.N),
                            dev(p.g_memory), p.B, p.H, p.N, p.W, stream);
}

NTM_INSTANTIATE_LAUNCHER(content_address_fwd, ContentAddressFwdParams);
NTM_INSTANTIATE_LAUNCHER(content_address_bwd, ContentAddressBwdParams);

}  // namespace cuda
}  // namespace ntm_fast
