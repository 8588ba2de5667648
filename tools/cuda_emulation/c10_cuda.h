// CPU stand-in for the c10/cuda pieces csrc/cuda/sequence_binding.cpp uses
// (tools/cuda_emulation): no guard, a null stream, the CPU as the device.
#pragma once

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include "cuda_runtime.h"

namespace c10 {
namespace cuda {
inline c10::DeviceIndex current_device() { return -1; }
struct CUDAGuard {
  explicit CUDAGuard(c10::Device) {}
};
struct EmulatedStream {
  cudaStream_t stream() const { return nullptr; }
};
inline EmulatedStream getCurrentCUDAStream() { return {}; }
}  // namespace cuda
}  // namespace c10

#define C10_CUDA_CHECK(e) TORCH_CHECK((e) == cudaSuccess, "emulated CUDA call failed")
