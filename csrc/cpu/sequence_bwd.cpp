// CPU whole-sequence backward: backpropagation through time over all T steps in one call, from
// what sequence_fwd saved (sequence.h). Per step, in reverse: write, read and addressing
// backwards (memory_kernels.h), the heads' activation derivatives, then each controller layer
// (step_math.h) with one BLAS product per layer for its input gradients. Every weight
// gradient and the output layer's are single products over all T*B rows after the loop.
// Steps past a sequence's end (lengths) pass the state gradients through unchanged.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "../common.h"
#include "sequence_dispatch.h"

namespace ntm_fast {
namespace {
using namespace cpu;

std::vector<at::Tensor> sequence_bwd_cpu(const c10::List<c10::optional<at::Tensor>>& grads,
                                         const at::Tensor& x, at::TensorList state,
                                         at::TensorList params, at::TensorList saved,
                                         const c10::optional<at::Tensor>& lengths,
                                         int64_t read_heads, int64_t shift_range, bool uniform,
                                         bool lstm) {
  const char* op = "ntm_fast::sequence_bwd";
  // One CPU-only saved tensor after the shared layout: the forward's content dots and norms.
  const SequenceArgs a = sequence_bwd_args(op, grads, x, state, params, saved, lengths,
                                           read_heads, shift_range, uniform, lstm,
                                           /*extra_saved=*/1);
  const SeqConfig& c = a.config;
  const int64_t CK = content_keep(MemDims{x.size(1), c.H, a.saved[0].size(2),
                                          a.saved[0].size(3), c.S});
  check_arg(op, "saved (content dots)", a.saved.back(), "(T, B, (H + 2) N + 2 H)",
            {x.size(0), x.size(1), CK}, x, "x");
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ntm_fast::sequence_bwd", [&] {
    sequence_backward_dispatch<scalar_t>(c, a.grads, x, a.state, a.params, a.saved,
                                         a.lengths_ptr(), out);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) { m.impl("sequence_bwd", &sequence_bwd_cpu); }

}  // namespace ntm_fast
