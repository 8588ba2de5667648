// Argument checks of the whole-sequence ops (sequence_fwd / sequence_bwd), shared by every
// device's implementation (the parameter order and the saved layout: sequence_config.h).
#pragma once

#include <ATen/core/List.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <string>
#include <vector>

#include "common.h"
#include "sequence_config.h"

namespace ntm_fast {

// Checks every argument and returns the sizes; errors name the argument, what it got
// (shape, dtype, device) and what was expected.
inline SeqConfig check_sequence_args(const char* op, const at::Tensor& x,
                                     const at::Tensor& memory, const at::Tensor& reads,
                                     const at::Tensor& weightings,
                                     const std::vector<at::Tensor>& state,
                                     const std::vector<at::Tensor>& params,
                                     const c10::optional<at::Tensor>& lengths,
                                     int64_t read_heads, int64_t shift_range, bool uniform,
                                     bool lstm) {
  check_arg(op, "x", x, "(T, B, F)", {-1, -1, -1}, x, "x");
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
                   ": x: expected dtype float32 or float64 (ntm_fast.native_sequence.run computes "
                   "half types in float32), got ",
                   describe(x));
  SeqConfig c{};
  c.lstm = lstm;
  c.uniform = uniform;
  c.T = x.size(0);
  c.B = x.size(1);
  c.F = x.size(2);
  check_arg(op, "memory", memory, "(B, N, W)", {c.B, -1, -1}, x, "x");
  c.N = memory.size(1);
  c.W = memory.size(2);
  TORCH_CHECK_VALUE(read_heads >= 1, op, ": read_heads: expected >= 1, got ", read_heads);
  c.R = read_heads;
  check_arg(op, "reads", reads, "(B, R, W)", {c.B, c.R, c.W}, x, "x");
  check_arg(op, "weightings", weightings, "(B, H, N)", {c.B, -1, c.N}, x, "x");
  c.H = weightings.size(1);
  c.Hw = c.H - c.R;
  TORCH_CHECK_VALUE(c.Hw >= 1, op, ": weightings: expected H = read_heads + write_heads heads "
                    "with at least one write head (read_heads = ", c.R, "), got ",
                    describe(weightings));
  TORCH_CHECK_VALUE(shift_range >= 0 && 2 * shift_range + 1 <= c.N, op,
                    ": shift_range: expected 0 <= k with S = 2k+1 <= N = ", c.N, ", got ",
                    shift_range);
  c.S = 2 * shift_range + 1;
  c.Sraw = uniform ? 1 : c.S;
  TORCH_CHECK_VALUE(static_cast<int64_t>(state.size()) == c.n_state(), op, ": state: expected ",
                    c.n_state(), " tensors (", lstm ? "h, c" : "none for a feedforward controller",
                    "), got ", state.size());
  const int64_t np = static_cast<int64_t>(params.size());
  TORCH_CHECK_VALUE(np >= c.per_layer() + 4 && (np - 4) % c.per_layer() == 0, op,
                    ": params: expected ", c.per_layer(), " tensors per controller layer plus 4 "
                    "(heads and output weight and bias), got ", np);
  c.L = (np - 4) / c.per_layer();
  c.C = params[0].dim() == 2 ? params[0].size(0) / (lstm ? 4 : 1) : 0;
  TORCH_CHECK_VALUE(c.C >= 1, op, ": params[0]: expected the first layer's weight (",
                    lstm ? "4C" : "C", ", F + R*W), got ", describe(params[0]));
  const int64_t G = c.gate_width();
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t in = l == 0 ? c.F + c.R * c.W : c.C;
    const std::string p = "params[" + std::to_string(l * c.per_layer());
    check_arg(op, (p + "] (layer weight)").c_str(), params[l * c.per_layer()], "(G, in)",
              {G, in}, x, "x");
    if (lstm) {
      check_arg(op, "params (weight_hh)", params[l * 4 + 1], "(4C, C)", {G, c.C}, x, "x");
      check_arg(op, "params (bias_ih)", params[l * 4 + 2], "(4C,)", {G}, x, "x");
      check_arg(op, "params (bias_hh)", params[l * 4 + 3], "(4C,)", {G}, x, "x");
    } else {
      check_arg(op, "params (layer bias)", params[l * 2 + 1], "(C,)", {G}, x, "x");
    }
  }
  const int64_t base = c.L * c.per_layer();
  c.P = c.raw_total();
  check_arg(op, "params (heads.weight)", params[base], "(P, C)", {c.P, c.C}, x, "x");
  check_arg(op, "params (heads.bias)", params[base + 1], "(P,)", {c.P}, x, "x");
  check_arg(op, "params (output.weight)", params[base + 2], "(O, C + R*W)",
            {-1, c.C + c.R * c.W}, x, "x");
  c.O = params[base + 2].size(0);
  check_arg(op, "params (output.bias)", params[base + 3], "(O,)", {c.O}, x, "x");
  for (size_t i = 0; i < state.size(); ++i) {
    check_arg(op, i == 0 ? "state (h)" : "state (c)", state[i], "(layers, B, C)",
              {c.L, c.B, c.C}, x, "x");
  }
  if (lengths.has_value() && lengths->defined()) {
    const at::Tensor& len = *lengths;
    TORCH_CHECK_VALUE(len.dim() == 1 && len.size(0) == c.B && len.scalar_type() == at::kLong &&
                          len.device() == x.device(),
                      op, ": lengths: expected shape (B,) = (", c.B, ") int64 on ", x.device(),
                      ", got ", describe(len));
    // Values are checked where they can be read without a host sync. On CUDA the call must
    // stay capturable in a CUDA graph, so they are not read back: the kernels compare t >=
    // length, so a length below 0 acts as 0 and one above T as T (FastNTM checks the range).
    if (len.is_cpu()) {
      const int64_t lo = len.min().item<int64_t>(), hi = len.max().item<int64_t>();
      TORCH_CHECK_VALUE(lo >= 0 && hi <= c.T, op, ": lengths: expected values in [0, T = ", c.T,
                        "], got values in [", lo, ", ", hi, "]");
    }
  }
  return c;
}

// The checks of sequence_bwd: x first (its sizes define the rest), then the saved history,
// then those of check_sequence_args with the saved initial memory and weightings standing for
// the state, then each upstream gradient given (None for an unused output). `extra_saved`:
// how many backend-specific tensors follow the shared layout (sequence_config.h); their
// shapes are the backend's to check.
inline SeqConfig check_sequence_bwd_args(const char* op,
                                         const std::vector<c10::optional<at::Tensor>>& gr,
                                         const at::Tensor& x, const std::vector<at::Tensor>& st,
                                         const std::vector<at::Tensor>& pr,
                                         const std::vector<at::Tensor>& sv,
                                         const c10::optional<at::Tensor>& lengths,
                                         int64_t read_heads, int64_t shift_range, bool uniform,
                                         bool lstm, int64_t extra_saved = 0) {
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
  const int64_t want = kSavedFixed + c.L * saved_per_layer(c) + extra_saved;
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
  for (const auto& t : sv) {
    TORCH_CHECK_VALUE(t.is_contiguous(), op, ": saved: expected contiguous tensors, got ",
                      describe(t));
  }
  // The outputs' gradients, then optionally the histories' (FastNTM's history=True).
  const int64_t n_gr = static_cast<int64_t>(gr.size()), n_out = 4 + c.n_state();
  TORCH_CHECK_VALUE(n_gr == n_out || n_gr == n_out + 3, op, ": grads: expected ", n_out,
                    " (logits, memory, reads, weightings", lstm ? ", h, c)" : ")",
                    " or three more (weighting, memory and raw head-parameter history), got ",
                    n_gr);
  const char* names[] = {"grads[0] (logits)", "grads[1] (memory)", "grads[2] (reads)",
                         "grads[3] (weightings)", "grads[4] (h)", "grads[5] (c)"};
  const char* specs[] = {"(T, B, O)", "(B, N, W)", "(B, R, W)", "(B, H, N)", "(layers, B, C)",
                         "(layers, B, C)"};
  const int64_t shapes[][3] = {{T, B, c.O}, {B, N, W},       {B, c.R, W},
                                {B, c.H, N}, {c.L, B, c.C}, {c.L, B, c.C}};
  if (n_gr > n_out && gr[n_out].has_value() && gr[n_out]->defined()) {
    check_arg(op, "grads[-3] (weighting history)", *gr[n_out], "(T, B, H, N)", {T, B, c.H, N}, x,
              "x");
  }
  if (n_gr > n_out && gr[n_out + 1].has_value() && gr[n_out + 1]->defined()) {
    check_arg(op, "grads[-2] (memory history)", *gr[n_out + 1], "(T, B, N, W)", {T, B, N, W}, x,
              "x");
  }
  if (n_gr > n_out && gr[n_out + 2].has_value() && gr[n_out + 2]->defined()) {
    check_arg(op, "grads[-1] (raw head-parameter history)", *gr[n_out + 2], "(T, B, P)",
              {T, B, c.P}, x, "x");
  }
  for (int64_t i = 0; i < n_out; ++i) {
    if (!gr[i].has_value() || !gr[i]->defined()) continue;
    const int64_t* sh = shapes[i];
    check_arg(op, names[i], *gr[i], specs[i], {sh[0], sh[1], sh[2]}, x, "x");
  }
  return c;
}

// The whole-sequence ops' arguments as every device's binding starts from them: the lists as
// vectors, checked (check_sequence_args / check_sequence_bwd_args), lengths made contiguous.
struct SequenceArgs {
  SeqConfig config;
  std::vector<at::Tensor> state, params, saved;  // saved: sequence_bwd only
  std::vector<c10::optional<at::Tensor>> grads;  // sequence_bwd only
  at::Tensor lengths;                            // undefined: none given
  const int64_t* lengths_ptr() const {
    return lengths.defined() ? lengths.const_data_ptr<int64_t>() : nullptr;
  }
};

inline at::Tensor contiguous_or_undefined(const c10::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? t->contiguous() : at::Tensor();
}

inline SequenceArgs sequence_fwd_args(const char* op, const at::Tensor& x,
                                      const at::Tensor& memory, const at::Tensor& reads,
                                      const at::Tensor& weightings, at::TensorList state,
                                      at::TensorList params,
                                      const c10::optional<at::Tensor>& lengths,
                                      int64_t read_heads, int64_t shift_range, bool uniform,
                                      bool lstm) {
  SequenceArgs a;
  a.state.assign(state.begin(), state.end());
  a.params.assign(params.begin(), params.end());
  a.config = check_sequence_args(op, x, memory, reads, weightings, a.state, a.params, lengths,
                                 read_heads, shift_range, uniform, lstm);
  a.lengths = contiguous_or_undefined(lengths);
  return a;
}

inline SequenceArgs sequence_bwd_args(const char* op,
                                      const c10::List<c10::optional<at::Tensor>>& grads,
                                      const at::Tensor& x, at::TensorList state,
                                      at::TensorList params, at::TensorList saved,
                                      const c10::optional<at::Tensor>& lengths,
                                      int64_t read_heads, int64_t shift_range, bool uniform,
                                      bool lstm, int64_t extra_saved = 0) {
  SequenceArgs a;
  a.state.assign(state.begin(), state.end());
  a.params.assign(params.begin(), params.end());
  a.saved.assign(saved.begin(), saved.end());
  for (const auto& g : grads) a.grads.push_back(g);
  a.config = check_sequence_bwd_args(op, a.grads, x, a.state, a.params, a.saved, lengths,
                                     read_heads, shift_range, uniform, lstm, extra_saved);
  a.lengths = contiguous_or_undefined(lengths);
  return a;
}

}  // namespace ntm_fast
