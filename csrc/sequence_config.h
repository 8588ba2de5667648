// The sizes of a whole-sequence call (sequence_fwd / sequence_bwd) and the layout of what the
// forward saves for the backward. Torch-free and __host__ __device__ under nvcc, so the CPU
// loops, the CUDA driver and its kernels share one definition of every offset.
// The parameter list is the module's, in this order:
//   per controller layer l (in_l = F + R*W for l = 0, else C):
//     LSTM:        weight_ih (4C, in_l), weight_hh (4C, C), bias_ih (4C), bias_hh (4C)
//     feedforward: weight (C, in_l), bias (C)
//   heads.weight (P, C), heads.bias (P), output.weight (O, C + R*W), output.bias (O)
// with P the heads' raw parameter count (ntm_fast/heads.py, HeadLayout.total).
#pragma once

#include <cstdint>

#include "ntm_math.h"

namespace ntm_fast {

struct SeqConfig {
  int64_t T, B, F, N, W, R, Hw, H, S, Sraw, C, L, O, P;
  bool lstm, uniform;
  NTM_HD int64_t layer_in(int64_t l) const { return l == 0 ? R * W : C; }  // without x
  NTM_HD int64_t inp_width(int64_t l) const { return layer_in(l) + (lstm ? C : 0); }
  NTM_HD int64_t gate_width() const { return lstm ? 4 * C : C; }
  NTM_HD int64_t per_layer() const { return lstm ? 4 : 2; }
  NTM_HD int64_t n_state() const { return lstm ? 2 : 0; }
  // Offsets of each group in a row of raw head parameters (HeadLayout.groups order).
  NTM_HD int64_t off_beta() const { return H * W; }
  NTM_HD int64_t off_gate() const { return H * W + H; }
  NTM_HD int64_t off_shift() const { return H * W + 2 * H; }
  NTM_HD int64_t off_gamma() const { return off_shift() + H * Sraw; }
  NTM_HD int64_t off_erase() const { return off_gamma() + H; }
  NTM_HD int64_t off_add() const { return off_erase() + Hw * W; }
  NTM_HD int64_t raw_total() const { return off_add() + Hw * W; }
};

// What sequence_fwd saves for sequence_bwd, in this order after its state outputs:
//   memory_before (T, B, N, W): M_{t-1} for each step
//   weightings_all (T + 1, B, H, N): w_0 (the input state) .. w_T
//   raw (T, B, P): the heads' raw parameters
//   out_in (T, B, C + R*W): the output layer's input [top layer output, reads]
//   per layer l: inp (T, B, inp_width(l)): the layer's input (with h_{t-1} for an LSTM),
//     act (T, B, gate_width): activated gates (LSTM) or tanh output (feedforward),
//     LSTM only: cells (T + 1, B, C): c_0 .. c_T
//   then the backend's own: the CPU keeps (T, B, content_keep) content dots and norms
//   (cpu/memory_kernels.h); CUDA nothing more
constexpr int64_t kSavedFixed = 4;
inline int64_t saved_per_layer(const SeqConfig& c) { return c.lstm ? 3 : 2; }

}  // namespace ntm_fast
