// Per-element math of one NTM time step outside the memory ops: the controller's activations
// (LSTM gates, feedforward tanh) and the heads' activations (ntm_fast/heads.py), forward and
// backward. Torch-free and __host__ __device__ under nvcc, like ntm_math.h, so the CPU
// sequence loop (csrc/cpu/sequence_*.cpp) and a CUDA driver share one definition.
//
// Conventions (docs/math.md#controller-and-heads; backward: docs/math-backward.md, sections
// #activations-backward and #lstm-backward):
//   * LSTM gates in torch.nn.LSTMCell order i, f, g, o: i, f, o = sigmoid, g = tanh,
//     c' = f c + i g, h' = o tanh(c');
//   * softplus(x) = log1p(exp(x)), x for x > 20 (F.softplus's threshold), derivative
//     exp(x) / (exp(x) + 1) (1 above the threshold), as torch's softplus_backward;
//   * heads: key, add = tanh; beta = softplus; gate, erase = sigmoid; gamma = 1 + softplus;
//     shift = softmax over S raw values, or the uniform form s(floor(x)) = 1 - frac(x),
//     s(floor(x) + 1) = frac(x) of x = k tanh(raw), clamped to [-k, k].
#pragma once

#include "ntm_math.h"

namespace ntm_fast {

NTM_HD float ntm_tanh(float x) { return tanhf(x); }
NTM_HD double ntm_tanh(double x) { return tanh(x); }
NTM_HD float ntm_log1p(float x) { return log1pf(x); }
NTM_HD double ntm_log1p(double x) { return log1p(x); }
NTM_HD float ntm_floor(float x) { return floorf(x); }
NTM_HD double ntm_floor(double x) { return floor(x); }

template <typename A>
NTM_HD A sigmoid(A x) {
  return A(1) / (A(1) + ntm_exp(-x));
}

// Derivatives from the activation's output y, as torch's sigmoid_backward / tanh_backward.
template <typename A>
NTM_HD A sigmoid_grad(A grad, A y) {
  return grad * (A(1) - y) * y;
}

template <typename A>
NTM_HD A tanh_grad(A grad, A y) {
  return grad * (A(1) - y * y);
}

constexpr double NTM_SOFTPLUS_THRESHOLD = 20.0;

template <typename A>
NTM_HD A softplus(A x) {
  return x > A(NTM_SOFTPLUS_THRESHOLD) ? x : ntm_log1p(ntm_exp(x));
}

// From the input x (torch's softplus_backward with beta = 1, threshold = 20).
template <typename A>
NTM_HD A softplus_grad(A grad, A x) {
  if (x > A(NTM_SOFTPLUS_THRESHOLD)) return grad;
  const A z = ntm_exp(x);
  return grad * z / (z + A(1));
}

// ---- LSTM cell, one unit j of a batch row; gates laid out [i | f | g | o], C units each -----

// c' = f c + i g.
template <typename A>
NTM_HD A lstm_cell(A i, A f, A g, A c_prev) {
  return f * c_prev + i * g;
}

// From the activated gates `act`, c_prev, tanh(c') and dL/dh', dL/dc' (carried): writes
// dL/d(pre-activations) into d_pre and returns dL/dc_prev.
template <typename A>
NTM_HD A lstm_unit_bwd(const A* act, int64_t C, int64_t j, A c_prev, A tanh_c, A d_h, A d_c,
                       A* d_pre) {
  const A i = act[j], f = act[C + j], g = act[2 * C + j], o = act[3 * C + j];
  const A dc = d_c + tanh_grad(d_h * o, tanh_c);
  d_pre[j] = sigmoid_grad(dc * g, i);
  d_pre[C + j] = sigmoid_grad(dc * c_prev, f);
  d_pre[2 * C + j] = tanh_grad(dc * i, g);
  d_pre[3 * C + j] = sigmoid_grad(d_h * tanh_c, o);
  return dc * f;
}

// ---- shift activations of one head ----------------------------------------------------------

// Softmax over S raw values (max-subtracted), written to s.
template <typename A>
NTM_HD void shift_softmax_fwd(const A* raw, int64_t S, A* s) {
  A mx = raw[0];
  for (int64_t j = 1; j < S; ++j) mx = raw[j] > mx ? raw[j] : mx;
  A sum = 0;
  for (int64_t j = 0; j < S; ++j) {
    s[j] = ntm_exp(raw[j] - mx);
    sum += s[j];
  }
  for (int64_t j = 0; j < S; ++j) s[j] /= sum;
}

// dL/draw_j = s_j (ds_j - sum_i ds_i s_i).
template <typename A>
NTM_HD void shift_softmax_bwd(const A* s, const A* ds, int64_t S, A* d_raw) {
  A dot = 0;
  for (int64_t j = 0; j < S; ++j) dot += ds[j] * s[j];
  for (int64_t j = 0; j < S; ++j) d_raw[j] = s[j] * (ds[j] - dot);
}

// The uniform form: x = k tanh(raw) clamped to [-k, k]; s(floor x) = 1 - frac, s(floor x + 1)
// = frac (index j is offset j - k).
template <typename A>
NTM_HD void shift_uniform_fwd(A raw, int64_t S, A* s) {
  const int64_t k = (S - 1) / 2;
  A x = A(k) * ntm_tanh(raw);
  x = x < A(-k) ? A(-k) : (x > A(k) ? A(k) : x);
  const A lower = ntm_floor(x), frac = x - lower;
  const int64_t lo = static_cast<int64_t>(lower) + k;
  for (int64_t j = 0; j < S; ++j) s[j] = j == lo ? A(1) - frac : (j == lo + 1 ? frac : A(0));
}

// dL/draw = (ds_{lo+1} - ds_lo) k (1 - tanh(raw)^2).
template <typename A>
NTM_HD A shift_uniform_bwd(A raw, const A* ds, int64_t S) {
  const int64_t k = (S - 1) / 2;
  const A t = ntm_tanh(raw);
  A x = A(k) * t;
  x = x < A(-k) ? A(-k) : (x > A(k) ? A(k) : x);
  const int64_t lo = static_cast<int64_t>(ntm_floor(x)) + k;
  A d_x = -ds[lo];
  if (lo + 1 < S) d_x += ds[lo + 1];
  return d_x * A(k) * (A(1) - t * t);
}

}  // namespace ntm_fast
