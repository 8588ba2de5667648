// Torch-free interface of the CUDA whole-sequence ops (sequence_fwd / sequence_bwd): the
// drivers (sequence_fwd.cu, sequence_bwd.cu) that issue every kernel of all T steps and of the
// whole BPTT on one stream, the step kernels they use (sequence_kernels.cu) and the one hook
// they need from torch, `seq_gemm` (cuBLAS through ATen, defined in sequence_binding.cpp).
// Element types: float and double. Every buffer is contiguous, row-major, device memory,
// allocated by the caller once per call; the drivers allocate nothing, never synchronise and
// never read device memory on the host, so a call can be captured in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../sequence_config.h"
#include "launchers.h"

namespace ntm_fast {
namespace cuda {

// Row-major c (m x n, leading dimension ldc) = op(a) op(b), plus c when `accumulate`, on the
// current stream. op(a) is a (m x k, lda) or, with ta, the transpose of a stored (k x m, lda);
// likewise b (k x n, ldb). Throws (c10::Error) on failure.
template <typename T>
void seq_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
              const T* b, int64_t ldb, bool accumulate, T* c, int64_t ldc);

// The drivers run float and double, each its own accumulation type, so the memory ops'
// workspaces are carved as T.
static_assert(std::is_same<acc_t<float>, float>::value &&
                  std::is_same<acc_t<double>, double>::value,
              "the memory ops' workspaces are carved in the element type");

// Hands out consecutive pieces of a workspace; with a null base it only counts (the size).
template <typename T>
struct Carve {
  T* base;
  int64_t used = 0;
  T* take(int64_t n) {
    T* p = base == nullptr ? nullptr : base + used;
    used += n;
    return p;
  }
};

// The activated head parameters of one step, in the layout of the memory kernels: key
// (B, H, W), beta, gate, gamma (B, H), shift (B, H, S), erase, add (B, Hw, W).
template <typename T>
struct HeadPtrs {
  T *key, *beta, *gate, *shift, *gamma, *erase, *add;
  static HeadPtrs carve(const SeqConfig& c, Carve<T>& w) {
    HeadPtrs p;
    p.key = w.take(c.B * c.H * c.W);
    p.beta = w.take(c.B * c.H);
    p.gate = w.take(c.B * c.H);
    p.shift = w.take(c.B * c.H * c.S);
    p.gamma = w.take(c.B * c.H);
    p.erase = w.take(c.B * c.Hw * c.W);
    p.add = w.take(c.B * c.Hw * c.W);
    return p;
  }
};

constexpr int64_t kColumnChunk = 256;
inline int64_t column_scratch(int64_t rows, int64_t n) {
  return (rows + kColumnChunk - 1) / kColumnChunk * n;
}

// ---- the step kernels (sequence_kernels.cu); `len` is the (B,) lengths or null --------------
template <typename T>
struct Steps {
  // dst (rows, n) = row (n) in every row.
  static cudaError_t fill_rows(T* dst, const T* row, int64_t rows, int64_t n, cudaStream_t s);
  // dst (rows, n; ldd) = a (lda) + b (ldb).
  static cudaError_t add_rows(T* dst, int64_t ldd, const T* a, int64_t lda, const T* b,
                              int64_t ldb, int64_t rows, int64_t n, cudaStream_t s);
  // dst = a + b + c over n elements.
  static cudaError_t sum3(T* dst, const T* a, const T* b, const T* c, int64_t n, cudaStream_t s);
  // out[j] = sum over rows of a[r, j]: per chunk of kColumnChunk rows in order into scratch
  // (column_scratch elements), then over the chunks in order (deterministic).
  static cudaError_t column_sums(const T* a, int64_t rows, int64_t n, T* out, T* scratch,
                                 cudaStream_t s);
  // Zeroes the rows (t, b) of a (T, B, n) tensor with t >= len[b].
  static cudaError_t zero_finished(T* a, const int64_t* len, int64_t steps, int64_t B, int64_t n,
                                   cudaStream_t s);
  // Activates the LSTM gates of act (B, 4C) in place, then c_new and h (B, C); rows with
  // t >= len[b] keep c (c_new = c_prev) and h.
  static cudaError_t lstm_fwd(T* act, const T* c_prev, T* c_new, T* h, const int64_t* len,
                              int64_t t, int64_t B, int64_t C, cudaStream_t s);
  static cudaError_t tanh_fwd(T* a, int64_t n, cudaStream_t s);
  // The heads' activations of raw (B, P) (ntm_fast/heads.py, HeadLayout.activate).
  static cudaError_t heads_activate(const SeqConfig& c, const T* raw, HeadPtrs<T> p,
                                    cudaStream_t s);
  // d_raw (B, P) from the activations p and the gradients g of the activated parameters.
  static cudaError_t heads_grad(const SeqConfig& c, const T* raw, HeadPtrs<T> p, HeadPtrs<T> g,
                                T* d_raw, cudaStream_t s);
  // LSTM backward of one layer and step: d_pre (B, 4C) from d_out (B, C; ld) + dh, updating the
  // carried dc in place (dh is read, not written).
  static cudaError_t lstm_bwd(const T* act, const T* c_prev, const T* c_new, const T* d_out,
                              int64_t ld, const T* dh, T* dc, T* d_pre, int64_t B, int64_t C,
                              cudaStream_t s);
  // d_pre (B, C) = tanh'(y) d_out (ld).
  static cudaError_t tanh_bwd(const T* d_out, int64_t ld, const T* y, T* d_pre, int64_t B,
                              int64_t C, cudaStream_t s);
  // Forward, after a step: rows with t >= len[b] keep memory and weightings (M_next = M_prev,
  // w_new = w_prev); the others take the new reads (reads = r_new).
  static cudaError_t keep_finished(const int64_t* len, int64_t t, const T* M_prev, T* M_next,
                                   const T* w_prev, T* w_new, const T* r_new, T* reads,
                                   const SeqConfig& c, cudaStream_t s);
  // Backward: for rows with t >= len[b], moves the carried gradients (dM, dW, dR and per layer
  // dH, dC) into `stash` and zeroes them (out = true), or back (out = false).
  static cudaError_t carry_finished(const int64_t* len, int64_t t, bool out, T* stash, T* dM,
                                    T* dW, T* dR, T* dH, T* dC, const SeqConfig& c,
                                    cudaStream_t s);
};
extern template struct Steps<float>;
extern template struct Steps<double>;

// ---- the drivers ----------------------------------------------------------------------------
// Per-layer pointers are host arrays of L device pointers.
template <typename T>
struct SeqFwdArgs {
  const T *x, *memory0, *reads0, *w0, *h0, *c0;  // h0, c0 (L, B, C): LSTM only
  const int64_t* len;                            // (B,) int64 or null
  const T* const* wcat;  // (G, inp_width(l)): the layer's weight without x's columns [| w_hh]
  const T* const* bias;  // (G,): bias_ih + bias_hh (LSTM) or the layer's bias
  const T *w_ih0, *w_heads, *b_heads, *w_out, *b_out;  // w_ih0: layer 0's full weight
  T *logits, *mem_out, *reads_out, *w_out_state, *h_out, *c_out;
  // Saved (sequence_config.h). Without `save`: mem_hist, w_hist, cells hold 2 steps (a ring),
  // raw, inp, act one; out_in always T.
  T *mem_hist, *w_hist, *raw, *out_in;
  T* const* inp;
  T* const* act;
  T* const* cells;
  bool save;
  void* workspace;  // sequence_fwd_workspace_bytes<T>(c)
};

template <typename T>
struct SeqBwdArgs {
  const T* x;
  const int64_t* len;
  const T* const* wcat;
  const T *w_ih0, *w_heads, *w_out;
  const T *mem_hist, *w_hist, *raw, *out_in;  // what sequence_fwd saved
  const T* const* inp;
  const T* const* act;
  const T* const* cells;
  // Upstream gradients (zeros for unused outputs), owned by the call: d_logits is masked in
  // place; the state ones become the gradients of the initial state.
  T *d_logits, *d_mem, *d_reads, *d_w, *d_h, *d_c;
  const T *d_w_hist, *d_m_hist;  // the histories' gradients (history=True), or null
  T* d_p_hist;  // the raw head-parameter history's (T, B, P), or null; with lengths owned:
                // rows past a sequence's end are zeroed in place (a finished row computes nothing)
  T* d_x;
  T* const* d_wi;   // per layer (G, in_full): layer 0's includes x's columns
  T* const* d_whh;  // LSTM: per layer (G, C)
  T* const* d_b;    // per layer (G,)
  T* const* d_b2;   // LSTM: per layer (G,), a copy of d_b (bias_hh)
  T *d_wheads, *d_bheads, *d_wout, *d_bout;
  void* workspace;  // sequence_bwd_workspace_bytes<T>(c)
};

template <typename T>
size_t sequence_fwd_workspace_bytes(const SeqConfig& c);
template <typename T>
size_t sequence_bwd_workspace_bytes(const SeqConfig& c);

// Issue the whole forward / backward on `stream`; the first launch error, or cudaSuccess.
template <typename T>
cudaError_t sequence_forward(const SeqConfig& c, const SeqFwdArgs<T>& a, cudaStream_t stream);
template <typename T>
cudaError_t sequence_backward(const SeqConfig& c, const SeqBwdArgs<T>& a, cudaStream_t stream);

// dst (rows, n; ldd) = src (rows, n; lds): one strided device-to-device copy.
template <typename T>
cudaError_t copy_rows(T* dst, int64_t ldd, const T* src, int64_t lds, int64_t rows, int64_t n,
                      cudaStream_t s) {
  return cudaMemcpy2DAsync(dst, ldd * sizeof(T), src, lds * sizeof(T), n * sizeof(T),
                           static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, s);
}
template <typename T>
cudaError_t copy_n(T* dst, const T* src, int64_t n, cudaStream_t s) {
  return cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToDevice, s);
}

#define NTM_SEQ_TRY(expr)                   \
  do {                                      \
    const cudaError_t err_ = (expr);        \
    if (err_ != cudaSuccess) return err_;   \
  } while (0)

}  // namespace cuda
}  // namespace ntm_fast
