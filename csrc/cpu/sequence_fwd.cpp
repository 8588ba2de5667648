// CPU whole-sequence forward: all T steps of the NTM (controller, heads, addressing, read,
// write; the order of operations of ntm_fast/model.py) in one call, the way cuDNN runs an
// LSTM. Per step: one BLAS product per controller layer and one for the heads, the
// activations, then the memory kernels of memory_kernels.h over batches. The input part of
// layer 0 and the output layer are one product each over all T*B rows. Nothing is allocated
// inside the loop. With `save`, it also returns what sequence_bwd needs (sequence.h).
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "../common.h"
#include "sequence_dispatch.h"

namespace ntm_fast {
namespace {
using namespace cpu;

std::vector<at::Tensor> sequence_fwd_cpu(const at::Tensor& x, const at::Tensor& memory,
                                         const at::Tensor& reads, const at::Tensor& weightings,
                                         at::TensorList state, at::TensorList params,
                                         const c10::optional<at::Tensor>& lengths,
                                         int64_t read_heads, int64_t shift_range, bool uniform,
                                         bool lstm, bool save) {
  const SequenceArgs a = sequence_fwd_args("ntm_fast::sequence_fwd", x, memory, reads, weightings,
                                           state, params, lengths, read_heads, shift_range,
                                           uniform, lstm);
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ntm_fast::sequence_fwd", [&] {
    sequence_forward_dispatch<scalar_t>(a.config, x, memory, reads, weightings, a.state,
                                        a.params, a.lengths_ptr(), save, out);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) { m.impl("sequence_fwd", &sequence_fwd_cpu); }

}  // namespace ntm_fast
