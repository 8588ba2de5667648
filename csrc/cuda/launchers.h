// Torch-free launchers of the CUDA kernels (csrc/cuda/kernels.cu): raw pointers, sizes and a
// stream. All tensors are contiguous, row-major, of the element type `dtype`; shapes follow
// ntm_fast/reference.py (memory (B, N, W), key/erase/add (B, H, W), weightings (B, H, N),
// beta/gate/gamma (B, H), shift (B, H, S)). `workspace` is device memory of at least
// `<op>_workspace_bytes(...)` bytes. Every launcher returns the first launch error (or
// cudaSuccess); the torch binding (ops_cuda.cpp) checks it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace ntm_fast {
namespace cuda {

enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

// Bytes of the accumulation type (float32 for half types, float64 for float64).
inline size_t acc_bytes(DType t) { return t == DType::Float64 ? 8 : 4; }

// ---- workspace sizes ---------------------------------------------------------------------------
inline size_t content_fwd_workspace_bytes(DType t, int64_t B, int64_t H, int64_t N) {
  return acc_bytes(t) * static_cast<size_t>(B * H * N);
}
inline size_t content_bwd_workspace_bytes(DType t, int64_t B, int64_t H, int64_t N) {
  return acc_bytes(t) * static_cast<size_t>(B * H * (7 * N + 1));
}
inline size_t address_fwd_workspace_bytes(DType t, int64_t B, int64_t H, int64_t N) {
  return acc_bytes(t) * static_cast<size_t>(3 * B * H * N);
}
inline size_t address_bwd_workspace_bytes(DType t, int64_t B, int64_t H, int64_t N) {
  return acc_bytes(t) * static_cast<size_t>(B * H * (10 * N + 1));
}
inline size_t sharpen_bwd_workspace_bytes(DType t, int64_t B, int64_t H, int64_t N) {
  return acc_bytes(t) * static_cast<size_t>(2 * B * H * N);
}

// ---- launchers ---------------------------------------------------------------------------------
cudaError_t content_address_fwd(DType t, const void* memory, const void* key, const void* beta,
                                void* out, void* workspace, int64_t B, int64_t H, int64_t N,
                                int64_t W, cudaStream_t stream);
cudaError_t content_address_bwd(DType t, const void* grad, const void* memory, const void* key,
                                const void* beta, void* g_memory, void* g_key, void* g_beta,
                                void* workspace, int64_t B, int64_t H, int64_t N, int64_t W,
                                cudaStream_t stream);
cudaError_t interpolate_fwd(DType t, const void* w_content, const void* w_prev, const void* gate,
                            void* out, int64_t B, int64_t H, int64_t N, cudaStream_t stream);
cudaError_t interpolate_bwd(DType t, const void* grad, const void* w_content, const void* w_prev,
                            const void* gate, void* g_content, void* g_prev, void* g_gate,
                            int64_t B, int64_t H, int64_t N, cudaStream_t stream);
cudaError_t shift_convolve_fwd(DType t, const void* w, const void* shift, void* out, int64_t B,
                               int64_t H, int64_t N, int64_t S, cudaStream_t stream);
cudaError_t shift_convolve_bwd(DType t, const void* grad, const void* w, const void* shift,
                               void* g_w, void* g_shift, int64_t B, int64_t H, int64_t N,
                               int64_t S, cudaStream_t stream);
cudaError_t sharpen_fwd(DType t, const void* w, const void* gamma, void* out, int64_t B,
                        int64_t H, int64_t N, cudaStream_t stream);
cudaError_t sharpen_bwd(DType t, const void* grad, const void* w, const void* gamma, void* g_w,
                        void* g_gamma, void* workspace, int64_t B, int64_t H, int64_t N,
                        cudaStream_t stream);
cudaError_t address_fwd(DType t, const void* memory, const void* key, const void* beta,
                        const void* gate, const void* shift, const void* gamma,
                        const void* w_prev, void* out, void* workspace, int64_t B, int64_t H,
                        int64_t N, int64_t W, int64_t S, cudaStream_t stream);
cudaError_t address_bwd(DType t, const void* grad, const void* memory, const void* key,
                        const void* beta, const void* gate, const void* shift, const void* gamma,
                        const void* w_prev, void* g_memory, void* g_key, void* g_beta,
                        void* g_gate, void* g_shift, void* g_gamma, void* g_w_prev,
                        void* workspace, int64_t B, int64_t H, int64_t N, int64_t W, int64_t S,
                        cudaStream_t stream);
cudaError_t read_fwd(DType t, const void* memory, const void* w, void* out, int64_t B, int64_t H,
                     int64_t N, int64_t W, cudaStream_t stream);
cudaError_t read_bwd(DType t, const void* grad, const void* memory, const void* w,
                     void* g_memory, void* g_w, int64_t B, int64_t H, int64_t N, int64_t W,
                     cudaStream_t stream);
cudaError_t write_fwd(DType t, const void* memory, const void* w, const void* erase,
                      const void* add, void* out, int64_t B, int64_t H, int64_t N, int64_t W,
                      cudaStream_t stream);
cudaError_t write_bwd(DType t, const void* grad, const void* memory, const void* w,
                      const void* erase, const void* add, void* g_memory, void* g_w,
                      void* g_erase, void* g_add, int64_t B, int64_t H, int64_t N, int64_t W,
                      cudaStream_t stream);

}  // namespace cuda
}  // namespace ntm_fast
