// Sizes and argument checks of the whole-sequence ops (sequence_fwd / sequence_bwd), shared by
// every device's implementation. The parameter list is the module's, in this order:
//   per controller layer l (in_l = F + R*W for l = 0, else C):
//     LSTM:        weight_ih (4C, in_l), weight_hh (4C, C), bias_ih (4C), bias_hh (4C)
//     feedforward: weight (C, in_l), bias (C)
//   heads.weight (P, C), heads.bias (P), output.weight (O, C + R*W), output.bias (O)
// with P the heads' raw parameter count (ntm_fast/heads.py, HeadLayout.total).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>
#include <vector>

#include "common.h"

namespace ntm_fast {

struct SeqConfig {
  int64_t T, B, F, N, W, R, Hw, H, S, Sraw, C, L, O, P;
  bool lstm, uniform;
  int64_t layer_in(int64_t l) const { return l == 0 ? R * W : C; }  // without x
  int64_t inp_width(int64_t l) const { return layer_in(l) + (lstm ? C : 0); }
  int64_t gate_width() const { return lstm ? 4 * C : C; }
  int64_t per_layer() const { return lstm ? 4 : 2; }
  int64_t n_state() const { return lstm ? 2 : 0; }
  // Offsets of each group in a row of raw head parameters (HeadLayout.groups order).
  int64_t off_beta() const { return H * W; }
  int64_t off_gate() const { return H * W + H; }
  int64_t off_shift() const { return H * W + 2 * H; }
  int64_t off_gamma() const { return off_shift() + H * Sraw; }
  int64_t off_erase() const { return off_gamma() + H; }
  int64_t off_add() const { return off_erase() + Hw * W; }
  int64_t raw_total() const { return off_add() + Hw * W; }
};

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
    const int64_t lo = len.min().item<int64_t>(), hi = len.max().item<int64_t>();
    TORCH_CHECK_VALUE(lo >= 0 && hi <= c.T, op, ": lengths: expected values in [0, T = ", c.T,
                      "], got values in [", lo, ", ", hi, "]");
  }
  return c;
}

}  // namespace ntm_fast
