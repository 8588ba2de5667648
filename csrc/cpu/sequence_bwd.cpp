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
  // x first (its sizes define the rest), then the saved history, then the shared checks with
  // the saved initial memory and weightings standing for the state.
  check_arg(op, "x", x, "(T, B, F)", {-1, -1, -1}, x, "x");
  const int64_t T = x.size(0), B = x.size(1);
  TORCH_CHECK_VALUE(sv.size() >= 4, op, ": saved: expected the tensors sequence_fwd saved, got ",
                    sv.size());
  check_arg(op, "saved[0] (memory history)", sv[0], "(T, B, N, W)", {T, B, -1, -1}, x, "x");
  const int64_t N = sv[0].size(2), W = sv[0].size(3);
  check_arg(op, "saved[1] (weightings history)", sv[1], "(T + 1, B, H, N)", {T + 1, B, -1, N}, x,
            "x");
  TORCH_CHECK_VALUE(read_heads >= 1, op, ": read_heads: expected >= 1, got ", read_heads);
  const at::Tensor reads_like = at::empty({B, read_heads, W}, x.options());
  const SeqConfig c = check_sequence_args(op, x, sv[0][0], reads_like, sv[1][0], st, pr, lengths,
                                          read_heads, shift_range, uniform, lstm);
  const int64_t want = saved_count(c);
  TORCH_CHECK_VALUE(static_cast<int64_t>(sv.size()) == want, op, ": saved: expected ", want,
                    " tensors from sequence_fwd(save=True), got ", sv.size());
  check_arg(op, "saved[2] (raw head parameters)", sv[2], "(T, B, P)", {T, B, c.P}, x, "x");
  check_arg(op, "saved[3] (output layer input)", sv[3], "(T, B, C + R*W)", {T, B, c.C + c.R * W},
            x, "x");
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t s = kSavedFixed + l * saved_per_layer(c);
    check_arg(op, "saved (layer input)", sv[s], "(T, B, in)", {T, B, c.inp_width(l)}, x, "x");
    check_arg(op, "saved (layer activations)", sv[s + 1], "(T, B, G)", {T, B, c.gate_width()}, x,
              "x");
    if (lstm) check_arg(op, "saved (cells)", sv[s + 2], "(T + 1, B, C)", {T + 1, B, c.C}, x, "x");
  }
  const int64_t CK = content_keep(MemDims{B, c.H, N, W, c.S});
  check_arg(op, "saved (content dots)", sv.back(), "(T, B, (H + 1) N + H)", {T, B, CK}, x, "x");
  for (const auto& t : sv) {
    TORCH_CHECK_VALUE(t.is_contiguous(), op, ": saved: expected contiguous tensors, got ",
                      describe(t));
  }
  TORCH_CHECK_VALUE(static_cast<int64_t>(gr.size()) == 4 + c.n_state(), op, ": grads: expected ",
                    4 + c.n_state(), " (logits, memory, reads, weightings",
                    lstm ? ", h, c)" : ")", ", got ", gr.size());
  const char* names[] = {"grads[0] (logits)", "grads[1] (memory)", "grads[2] (reads)",
                         "grads[3] (weightings)", "grads[4] (h)", "grads[5] (c)"};
  const char* specs[] = {"(T, B, O)", "(B, N, W)", "(B, R, W)", "(B, H, N)", "(layers, B, C)",
                         "(layers, B, C)"};
  const int64_t shapes[][3] = {{T, B, c.O}, {B, N, W},       {B, c.R, W},
                                {B, c.H, N}, {c.L, B, c.C}, {c.L, B, c.C}};
  for (size_t i = 0; i < gr.size(); ++i) {
    if (!gr[i].has_value() || !gr[i]->defined()) continue;
    const int64_t* sh = shapes[i];
    check_arg(op, names[i], *gr[i], specs[i], {sh[0], sh[1], sh[2]}, x, "x");
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
