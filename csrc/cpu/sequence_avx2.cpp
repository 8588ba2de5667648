// The CPU whole-sequence loops compiled for AVX2 + FMA (namespace ntm_fast::avx2), chosen at run
// time by sequence_dispatch.h. Every header that is not ours is included first, outside the
// target region, so no inline function of torch or the standard library is compiled for AVX2
// here (those would be shared with the baseline build); csrc/cpu/*.h then compile into a
// namespace of their own. The math is the same source; FMA contraction changes roundings only.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "../common.h"
#include "../ntm_math.h"
#include "../sequence_checks.h"
#include "../step_math.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NTM_CPU_NS avx2  // before vec.h, which defaults it to cpu
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "activations.h"
#include "memory_kernels.h"
#include "sequence.h"
#include "sequence_bwd_loop.h"
#include "sequence_fwd_loop.h"
#pragma GCC pop_options

namespace ntm_fast {
namespace avx2 {
template void sequence_forward<float>(const SeqConfig&, const at::Tensor&, const at::Tensor&,
                                      const at::Tensor&, const at::Tensor&,
                                      const std::vector<at::Tensor>&,
                                      const std::vector<at::Tensor>&, const int64_t*, bool,
                                      std::vector<at::Tensor>&);
template void sequence_forward<double>(const SeqConfig&, const at::Tensor&, const at::Tensor&,
                                       const at::Tensor&, const at::Tensor&,
                                       const std::vector<at::Tensor>&,
                                       const std::vector<at::Tensor>&, const int64_t*, bool,
                                       std::vector<at::Tensor>&);
template void sequence_backward<float>(const SeqConfig&,
                                       const std::vector<c10::optional<at::Tensor>>&,
                                       const at::Tensor&, const std::vector<at::Tensor>&,
                                       const std::vector<at::Tensor>&,
                                       const std::vector<at::Tensor>&, const int64_t*,
                                       std::vector<at::Tensor>&);
template void sequence_backward<double>(const SeqConfig&,
                                        const std::vector<c10::optional<at::Tensor>>&,
                                        const at::Tensor&, const std::vector<at::Tensor>&,
                                        const std::vector<at::Tensor>&,
                                        const std::vector<at::Tensor>&, const int64_t*,
                                        std::vector<at::Tensor>&);
}  // namespace avx2
}  // namespace ntm_fast
#endif
