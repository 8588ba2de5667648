// CPU stand-in for the CUDA runtime API the whole-sequence drivers and step kernels use
// (tools/cuda_emulation): copies are memmove; a kernel launch is a plain call with one thread
// (gridDim = blockDim = 1), so every grid-stride loop of csrc/cuda/sequence_kernels.cu runs in
// full, in order. Only for emulating those files on the CPU; never part of the extension.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
typedef void* cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyDeviceToDevice = 3 };

inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind,
                                   cudaStream_t) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy2DAsync(void* d, size_t dpitch, const void* s, size_t spitch,
                                     size_t width, size_t height, cudaMemcpyKind, cudaStream_t) {
  if (width > dpitch || width > spitch) return cudaErrorInvalidValue;  // as the runtime
  for (size_t r = 0; r < height; ++r) {
    std::memmove(static_cast<char*>(d) + r * dpitch, static_cast<const char*>(s) + r * spitch,
                 width);
  }
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }

struct EmulatedIndex {
  unsigned x;
};
static const EmulatedIndex blockIdx{0}, threadIdx{0}, blockDim{1}, gridDim{1};

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
