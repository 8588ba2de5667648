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
  const std::vector<at::Tensor> st(state.begin(), state.end()), pr(params.begin(), params.end());
  const std::vector<at::Tensor> sv(saved.begin(), saved.end());
  std::vector<c10::optional<at::Tensor>> gr;
  for (const auto& g : grads) gr.push_back(g);
  TORCH_CHECK_VALUE(sv.size() >= 4, op, ": saved: expected the tensors sequence_fwd saved, got ",
                    sv.size());
  for (size_t i = 0; i < 4; ++i) {
    TORCH_CHECK_VALUE(sv[i].dim() == (i == 0 || i == 1 ? 4 : 3), op, ": saved[", i,
                      "]: expected a tensor saved by sequence_fwd(save=True), got ",
                      describe(sv[i]));
  }
  TORCH_CHECK_VALUE(read_heads >= 1, op, ": read_heads: expected >= 1, got ", read_heads);
  // The saved memory and weightings stand for the initial state in the shared checks.
  const at::Tensor reads_like = at::empty({x.size(1), read_heads, sv[0].size(3)}, sv[0].options());
  const SeqConfig c = check_sequence_args(op, x, sv[0][0], reads_like, sv[1][0], st, pr, lengths,
                                          read_heads, shift_range, uniform, lstm);
  const int64_t want = kSavedFixed + c.L * saved_per_layer(c);
  TORCH_CHECK_VALUE(static_cast<int64_t>(sv.size()) == want, op, ": saved: expected ", want,
                    " tensors from sequence_fwd(save=True), got ", sv.size());
  TORCH_CHECK_VALUE(static_cast<int64_t>(gr.size()) == 4 + c.n_state(), op, ": grads: expected ",
                    4 + c.n_state(), " (logits, memory, reads, weightings",
                    lstm ? ", h, c)" : ")", ", got ", gr.size());
  for (const auto& t : sv) {
    TORCH_CHECK_VALUE(t.is_contiguous() && t.scalar_type() == x.scalar_type() &&
                          t.device() == x.device(),
                      op, ": saved: expected contiguous tensors like x, got ", describe(t));
  }
  at::Tensor len;
  if (lengths.has_value() && lengths->defined()) len = lengths->contiguous();
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ntm_fast::sequence_bwd", [&] {
    sequence_backward_dispatch<scalar_t>(c, gr, x, st, pr, sv,
                                len.defined() ? len.const_data_ptr<int64_t>() : nullptr, out);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) { m.impl("sequence_bwd", &sequence_bwd_cpu); }

}  // namespace ntm_fast
