// Torch-free launchers of the CUDA memory ops, one per op and direction, defined in <op>.cu
// for T = float, double, Half, BFloat16 (params.h). Each takes the op's parameter struct and a
// stream, enqueues its kernels and returns the first launch error (or cudaSuccess); the torch
// binding (<op>_binding.cpp) checks it. A params' `workspace` holds at least
// workspace_bytes<T>(<Op>Workspace{N}, B, H) bytes of device memory.
#pragma once

#include <cuda_runtime.h>

#include "params.h"

namespace ntm_fast {
namespace cuda {

template <typename T>
cudaError_t content_address_fwd(const ContentAddressFwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t content_address_bwd(const ContentAddressBwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t interpolate_fwd(const InterpolateFwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t interpolate_bwd(const InterpolateBwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t shift_convolve_fwd(const ShiftConvolveFwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t shift_convolve_bwd(const ShiftConvolveBwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t sharpen_fwd(const SharpenFwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t sharpen_bwd(const SharpenBwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t address_fwd(const AddressFwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t address_bwd(const AddressBwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t read_fwd(const ReadFwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t read_bwd(const ReadBwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t write_fwd(const WriteFwdParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t write_bwd(const WriteBwdParams<T>& p, cudaStream_t stream);

}  // namespace cuda
}  // namespace ntm_fast
