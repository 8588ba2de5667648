// Shared pieces of the CPU whole-sequence loop (sequence_fwd.cpp, sequence_bwd.cpp): the
// activated head parameters of one step, per-batch-row head activations and their backward
// (csrc/step_math.h); what the forward saves for the backward: csrc/sequence_config.h.
#pragma once

#include <ATen/Parallel.h>

#include <limits>
#include <vector>

#include "../common.h"
#include "../sequence_checks.h"
#include "../step_math.h"
#include "blas.h"
#include "memory_kernels.h"

namespace ntm_fast {
namespace NTM_CPU_NS {

// Per-step activated head parameters, contiguous in the layout the memory kernels take.
template <typename T>
struct HeadBufs {
  std::vector<T> key, beta, gate, shift, gamma, erase, add;
  explicit HeadBufs(const SeqConfig& c)
      : key(c.B * c.H * c.W), beta(c.B * c.H), gate(c.B * c.H), shift(c.B * c.H * c.S),
        gamma(c.B * c.H), erase(c.B * c.Hw * c.W), add(c.B * c.Hw * c.W) {}
};

// Activations of batch row b's raw head parameters (ntm_fast/heads.py, HeadLayout.activate).
template <typename T>
void heads_activate_row(const SeqConfig& c, const T* raw, int64_t b, HeadBufs<T>& p) {
  const int64_t H = c.H, W = c.W, S = c.S;
  for (int64_t i = 0; i < H * W; ++i) p.key[b * H * W + i] = ntm_tanh(raw[i]);
  for (int64_t h = 0; h < H; ++h) {
    p.beta[b * H + h] = softplus(raw[c.off_beta() + h]);
    p.gate[b * H + h] = sigmoid(raw[c.off_gate() + h]);
    p.gamma[b * H + h] = T(1) + softplus(raw[c.off_gamma() + h]);
    T* s = p.shift.data() + (b * H + h) * S;
    if (c.uniform) {
      shift_uniform_fwd(raw[c.off_shift() + h], S, s);
    } else {
      shift_softmax_fwd(raw + c.off_shift() + h * S, S, s);
    }
  }
  const int64_t E = c.Hw * W;
  for (int64_t i = 0; i < E; ++i) {
    p.erase[b * E + i] = sigmoid(raw[c.off_erase() + i]);
    p.add[b * E + i] = ntm_tanh(raw[c.off_add() + i]);
  }
}

// Backward of heads_activate_row: d_raw from dL/d(each activated parameter) `g` and the
// activations `p` (both HeadBufs, row b).
template <typename T>
void heads_grad_row(const SeqConfig& c, const T* raw, int64_t b, const HeadBufs<T>& p,
                    const HeadBufs<T>& g, T* d_raw) {
  const int64_t H = c.H, W = c.W, S = c.S;
  for (int64_t i = 0; i < H * W; ++i) {
    d_raw[i] = tanh_grad(g.key[b * H * W + i], p.key[b * H * W + i]);
  }
  for (int64_t h = 0; h < H; ++h) {
    const int64_t bh = b * H + h;
    d_raw[c.off_beta() + h] = softplus_grad(g.beta[bh], raw[c.off_beta() + h]);
    d_raw[c.off_gate() + h] = sigmoid_grad(g.gate[bh], p.gate[bh]);
    d_raw[c.off_gamma() + h] = softplus_grad(g.gamma[bh], raw[c.off_gamma() + h]);
    const T* ds = g.shift.data() + bh * S;
    if (c.uniform) {
      d_raw[c.off_shift() + h] = shift_uniform_bwd(raw[c.off_shift() + h], ds, S);
    } else {
      shift_softmax_bwd(p.shift.data() + bh * S, ds, S, d_raw + c.off_shift() + h * S);
    }
  }
  const int64_t E = c.Hw * W;
  for (int64_t i = 0; i < E; ++i) {
    d_raw[c.off_erase() + i] = sigmoid_grad(g.erase[b * E + i], p.erase[b * E + i]);
    d_raw[c.off_add() + i] = tanh_grad(g.add[b * E + i], p.add[b * E + i]);
  }
}

// Buffers for the saved history. Fresh memory for it (B*N*W per step, over 100 MB at batch
// 256) costs a page fault per 4 KiB on every call; the previous call's buffers are reused
// instead once nothing else holds them (its backward has run and autograd released them).
// One pool per calling thread, holding at most the buffers of its last call.
class SavedPool {
 public:
  at::Tensor get(c10::IntArrayRef shape, const at::TensorOptions& opt) {
    for (at::Tensor& t : old_) {
      const bool free = t.defined() && t.use_count() == 1 && t.storage().use_count() == 1;
      if (free && t.sizes() == shape && t.options().dtype() == opt.dtype()) {
        used_.push_back(std::move(t));
        if (poison_enabled()) used_.back().fill_(std::numeric_limits<double>::quiet_NaN());
        return used_.back();
      }
    }
    used_.push_back(new_output(shape, opt));
    return used_.back();
  }
  void end_call() {  // the buffers of this call are the candidates of the next
    old_ = std::move(used_);
    used_.clear();
  }

 private:
  std::vector<at::Tensor> old_, used_;
};

// One parallel_for over batches with a scratch block per thread, allocated once per call.
template <typename A>
struct ThreadScratch {
  std::vector<A> data;
  int64_t per_thread;
  explicit ThreadScratch(int64_t n)
      : data(static_cast<size_t>(n * at::get_num_threads())), per_thread(n) {}
  A* get() { return data.data() + at::get_thread_num() * per_thread; }
};

}  // namespace NTM_CPU_NS
}  // namespace ntm_fast
