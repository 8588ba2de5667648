// Device helpers shared by the memory-op kernels (<op>.cu): element conversions, gradient
// saturation, fixed-order warp and block reductions, launch sizes and the launchers' explicit
// instantiations. Row kernels run one kThreads block per (batch, head); every reduction has a
// fixed order (warp shuffles, then warps in order), so results are deterministic.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../ntm_math.h"
#include "params.h"

namespace ntm_fast {
namespace cuda {

constexpr int kThreads = 256;  // row kernels: 8 warps
constexpr int kWarps = kThreads / 32;

// ---- element types: the params' storage types as CUDA types ---------------------------------
template <typename T>
struct DeviceOf {
  using type = T;
};
template <>
struct DeviceOf<Half> {
  using type = __half;
};
template <>
struct DeviceOf<BFloat16> {
  using type = __nv_bfloat16;
};
template <typename T>
using dev_t = typename DeviceOf<T>::type;
static_assert(sizeof(Half) == sizeof(__half) && alignof(Half) == alignof(__half), "Half");
static_assert(sizeof(BFloat16) == sizeof(__nv_bfloat16) &&
                  alignof(BFloat16) == alignof(__nv_bfloat16),
              "BFloat16");

// A params pointer as the kernels' element type (the same bits).
template <typename T>
const dev_t<T>* dev(const T* p) {
  return reinterpret_cast<const dev_t<T>*>(p);
}
template <typename T>
dev_t<T>* dev(T* p) {
  return reinterpret_cast<dev_t<T>*>(p);
}

// Device code has internal linkage, as in one translation unit: ptxas then inlines and
// allocates registers as it did before the ops were split into files.
namespace {

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

}  // namespace

// ---- launch sizes ---------------------------------------------------------------------------
inline unsigned elementwise_blocks(int64_t total) {
  const int64_t blocks = (total + 255) / 256;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}
inline unsigned warp_row_blocks(int64_t rows) {  // 8 warps (rows) per 256-thread block
  return static_cast<unsigned>((rows + 7) / 8);
}

#define NTM_LAUNCH_CHECK()                        \
  do {                                            \
    const cudaError_t err_ = cudaGetLastError();  \
    if (err_ != cudaSuccess) return err_;         \
  } while (0)

// The launcher template `fn` (declared in launchers.h) for every element type.
#define NTM_INSTANTIATE_LAUNCHER(fn, Params)                                  \
  template cudaError_t fn<float>(const Params<float>&, cudaStream_t);         \
  template cudaError_t fn<double>(const Params<double>&, cudaStream_t);       \
  template cudaError_t fn<Half>(const Params<Half>&, cudaStream_t);           \
  template cudaError_t fn<BFloat16>(const Params<BFloat16>&, cudaStream_t)

}  // namespace cuda
}  // namespace ntm_fast
