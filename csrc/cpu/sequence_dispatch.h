// Run-time choice of the CPU whole-sequence loops: the AVX2 + FMA build of the same source
// (sequence_avx2.cpp, x86-64 only) when the CPU has both, else the baseline build (SSE2 on
// x86-64, NEON on arm64). Chosen per call from the CPU's features, never from the build
// machine's flags; NTM_FAST_CPU_ISA=baseline forces the baseline build (tests compare both).
#pragma once

#include <cstdlib>
#include <cstring>

#include "sequence_bwd_loop.h"
#include "sequence_fwd_loop.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NTM_FAST_AVX2_BUILD 1
#endif

namespace ntm_fast {

#ifdef NTM_FAST_AVX2_BUILD
namespace avx2 {  // explicit instantiations in sequence_avx2.cpp
template <typename T>
void sequence_forward(const SeqConfig& c, const at::Tensor& x, const at::Tensor& memory0,
                      const at::Tensor& reads0, const at::Tensor& w0,
                      const std::vector<at::Tensor>& state, const std::vector<at::Tensor>& prm,
                      const int64_t* len, bool save, std::vector<at::Tensor>& out);
template <typename T>
void sequence_backward(const SeqConfig& c, const std::vector<c10::optional<at::Tensor>>& grads,
                       const at::Tensor& x_, const std::vector<at::Tensor>& state,
                       const std::vector<at::Tensor>& prm, const std::vector<at::Tensor>& saved,
                       const int64_t* len, std::vector<at::Tensor>& out);
}  // namespace avx2
#endif

// "avx2" when the AVX2 + FMA build runs on this CPU, else "baseline".
inline const char* sequence_isa() {
  const char* force = std::getenv("NTM_FAST_CPU_ISA");
  if (force != nullptr && std::strcmp(force, "baseline") == 0) return "baseline";
#ifdef NTM_FAST_AVX2_BUILD
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (has) return "avx2";
#endif
  return "baseline";
}

template <typename T, typename... Args>
void sequence_forward_dispatch(Args&&... args) {
#ifdef NTM_FAST_AVX2_BUILD
  if (std::strcmp(sequence_isa(), "avx2") == 0) {
    return avx2::sequence_forward<T>(std::forward<Args>(args)...);
  }
#endif
  cpu::sequence_forward<T>(std::forward<Args>(args)...);
}

template <typename T, typename... Args>
void sequence_backward_dispatch(Args&&... args) {
#ifdef NTM_FAST_AVX2_BUILD
  if (std::strcmp(sequence_isa(), "avx2") == 0) {
    return avx2::sequence_backward<T>(std::forward<Args>(args)...);
  }
#endif
  cpu::sequence_backward<T>(std::forward<Args>(args)...);
}

}  // namespace ntm_fast
