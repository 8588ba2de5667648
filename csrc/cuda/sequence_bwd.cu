// CUDA whole-sequence backward: backpropagation through time over all T steps in one host call
// that only issues work on one stream, from what sequence_fwd saved; the order of operations
// of the CPU loop (csrc/cpu/sequence_bwd_loop.h). Per step, in reverse: the heads' activations
// recomputed from the saved raw values, write_bwd, read_bwd and address_bwd (launchers.h)
// with the carried gradients, the heads' derivatives, one cuBLAS product back into the controller,
// then per layer the activation derivative kernel and one product for its input gradients.
// Steps past a sequence's end (lengths) pass the carried gradients through (carry_finished).
// Every weight gradient is one product over all T*B rows after the loop. Workspace: BwdWork.
#include <algorithm>
#include <vector>

#include "sequence_launchers.h"

namespace ntm_fast {
namespace cuda {
namespace {

template <typename T>
struct BwdWork {
  HeadPtrs<T> p, g;  // activations (recomputed) and their gradients
  T *d_out_in, *d_raw, *dm_write, *dm_read, *dm_addr, *dw_write, *dw_read, *dw_total;
  T *w_write, *w_read, *d_read, *d_top, *d_inp, *stash, *addr, *col;
  std::vector<T*> d_pre;  // per layer (T, B, G): dL/d(pre-activations)
  int64_t elems;
  BwdWork(const SeqConfig& c, T* base) {
    Carve<T> w{base};
    const int64_t TB = c.T * c.B, B = c.B, N = c.N, W = c.W, H = c.H, R = c.R, Hw = c.Hw;
    p = HeadPtrs<T>::carve(c, w);
    g = HeadPtrs<T>::carve(c, w);
    d_out_in = w.take(TB * (c.C + R * W));
    d_raw = w.take(TB * c.P);
    for (int64_t l = 0; l < c.L; ++l) d_pre.push_back(w.take(TB * c.gate_width()));
    dm_write = w.take(B * N * W);
    dm_read = w.take(B * N * W);
    dm_addr = w.take(B * N * W);
    dw_write = w.take(B * Hw * N);
    dw_read = w.take(B * R * N);
    dw_total = w.take(B * H * N);
    w_write = w.take(B * Hw * N);
    w_read = w.take(B * R * N);
    d_read = w.take(B * R * W);
    d_top = w.take(B * c.C);
    int64_t max_iw = 0;
    for (int64_t l = 0; l < c.L; ++l) max_iw = std::max(max_iw, c.inp_width(l));
    d_inp = w.take(B * max_iw);
    // Carried gradients of finished rows (carry_finished's layout).
    stash = w.take(B * (N * W + H * N + R * W + (c.lstm ? 2 * c.L * c.C : 0)));
    addr = w.take(workspace_elems(AddressBwdWorkspace(N), B, H));  // acc_t<T> is T
    col = w.take(column_scratch(TB, std::max({c.gate_width(), c.P, c.O})));  // bias gradients
    elems = w.used;
  }
};

}  // namespace

template <typename T>
size_t sequence_bwd_workspace_bytes(const SeqConfig& c) {
  return static_cast<size_t>(BwdWork<T>(c, nullptr).elems) * sizeof(T);
}

template <typename T>
cudaError_t sequence_backward(const SeqConfig& c, const SeqBwdArgs<T>& a, cudaStream_t st) {
  using K = Steps<T>;
  const int64_t Ts = c.T, B = c.B, F = c.F, N = c.N, W = c.W, R = c.R, H = c.H, Hw = c.Hw;
  const int64_t C = c.C, RW = R * W, G = c.gate_width(), P = c.P, O = c.O, CR = C + RW;
  const int64_t NW = N * W, HN = H * N, RN = R * N, HwN = Hw * N, TB = Ts * B;
  BwdWork<T> wk(c, static_cast<T*>(a.workspace));
  const HeadPtrs<T>&p = wk.p, &g = wk.g;
  T *dM = a.d_mem, *dW = a.d_w, *dR = a.d_reads, *dH = a.d_h, *dC = a.d_c;
  // The memory ops' params; per step only M_{t-1} and w_{t-1} change (dM and dW are the carried
  // gradients: write_bwd reads dM, address_bwd overwrites dW with dL/dw_{t-1}).
  WriteBwdParams<T> write_p;  // on the write heads' rows
  write_p.set_sizes(B, Hw, N, W, 0);
  write_p.grad = dM;
  write_p.w = wk.w_write;
  write_p.erase = p.erase;
  write_p.add = p.add;
  write_p.g_memory = wk.dm_write;
  write_p.g_w = wk.dw_write;
  write_p.g_erase = g.erase;
  write_p.g_add = g.add;
  ReadBwdParams<T> read_p;  // on the read heads' rows
  read_p.set_sizes(B, R, N, W, 0);
  read_p.grad = wk.d_read;
  read_p.w = wk.w_read;
  read_p.g_memory = wk.dm_read;
  read_p.g_w = wk.dw_read;
  AddressBwdParams<T> address_p;
  address_p.set_sizes(B, H, N, W, c.S);
  address_p.grad = wk.dw_total;
  address_p.key = p.key;
  address_p.beta = p.beta;
  address_p.gate = p.gate;
  address_p.shift = p.shift;
  address_p.gamma = p.gamma;
  address_p.g_memory = wk.dm_addr;
  address_p.g_key = g.key;
  address_p.g_beta = g.beta;
  address_p.g_gate = g.gate;
  address_p.g_shift = g.shift;
  address_p.g_gamma = g.gamma;
  address_p.g_w_prev = dW;
  address_p.workspace = wk.addr;

  // Logits past a sequence's end were zeroed, so their gradients are dropped.
  if (a.len != nullptr) NTM_SEQ_TRY(K::zero_finished(a.d_logits, a.len, Ts, B, O, st));
  if (a.len != nullptr && a.d_p_hist != nullptr) {
    NTM_SEQ_TRY(K::zero_finished(a.d_p_hist, a.len, Ts, B, P, st));
  }
  seq_gemm<T>(false, false, TB, CR, O, a.d_logits, O, a.w_out, CR, false, wk.d_out_in, CR);

  for (int64_t t = Ts - 1; t >= 0; --t) {
    const T* M_prev = a.mem_hist + t * B * NW;
    const T* w_prev = a.w_hist + t * B * HN;
    const T* w_t = a.w_hist + (t + 1) * B * HN;
    const T* raw_t = a.raw + t * B * P;
    const T* dout = wk.d_out_in + t * B * CR;
    if (a.d_w_hist != nullptr) {  // before a finished row's carry: its w_t is w_{t-1}
      NTM_SEQ_TRY(K::add_rows(dW, HN, dW, HN, a.d_w_hist + t * B * HN, HN, B, HN, st));
    }
    if (a.d_m_hist != nullptr) {
      NTM_SEQ_TRY(K::add_rows(dM, NW, dM, NW, a.d_m_hist + t * B * NW, NW, B, NW, st));
    }
    if (a.len != nullptr) {
      NTM_SEQ_TRY(K::carry_finished(a.len, t, true, wk.stash, dM, dW, dR, dH, dC, c, st));
    }
    NTM_SEQ_TRY(K::heads_activate(c, raw_t, p, st));
    NTM_SEQ_TRY(K::add_rows(wk.d_read, RW, dout + C, CR, dR, RW, B, RW, st));
    NTM_SEQ_TRY(copy_rows(wk.w_write, HwN, w_t + RN, HN, B, HwN, st));
    NTM_SEQ_TRY(copy_rows(wk.w_read, RN, w_t, HN, B, RN, st));
    // -- write, read and addressing backwards --------------------------------------------------
    write_p.memory = M_prev;
    NTM_SEQ_TRY(write_bwd(write_p, st));
    read_p.memory = M_prev;
    NTM_SEQ_TRY(read_bwd(read_p, st));
    NTM_SEQ_TRY(K::add_rows(wk.dw_total, HN, wk.dw_read, RN, dW, HN, B, RN, st));
    NTM_SEQ_TRY(K::add_rows(wk.dw_total + RN, HN, wk.dw_write, HwN, dW + RN, HN, B, HwN, st));
    // dW becomes dL/dw_{t-1} (address_bwd's g_w_prev), dM dL/dM_{t-1}.
    address_p.memory = M_prev;
    address_p.w_prev = w_prev;
    NTM_SEQ_TRY(address_bwd(address_p, st));
    NTM_SEQ_TRY(K::sum3(dM, wk.dm_write, wk.dm_read, wk.dm_addr, B * NW, st));
    // -- heads and controller ------------------------------------------------------------------
    T* draw_t = wk.d_raw + t * B * P;
    NTM_SEQ_TRY(K::heads_grad(c, raw_t, p, g, draw_t, st));
    if (a.d_p_hist != nullptr) {
      NTM_SEQ_TRY(K::add_rows(draw_t, P, draw_t, P, a.d_p_hist + t * B * P, P, B, P, st));
    }
    NTM_SEQ_TRY(copy_rows(wk.d_top, C, dout, CR, B, C, st));
    seq_gemm<T>(false, false, B, C, P, draw_t, P, a.w_heads, C, true, wk.d_top, C);
    const T* d_out = wk.d_top;  // dL/d(layer output), rows of ld
    int64_t ld = C;
    for (int64_t l = c.L - 1; l >= 0; --l) {
      const int64_t IW = c.inp_width(l), in_l = c.layer_in(l);
      const T* act = a.act[l] + t * B * G;
      T* dp = wk.d_pre[l] + t * B * G;
      if (c.lstm) {
        NTM_SEQ_TRY(K::lstm_bwd(act, a.cells[l] + t * B * C, a.cells[l] + (t + 1) * B * C, d_out,
                                ld, dH + l * B * C, dC + l * B * C, dp, B, C, st));
      } else {
        NTM_SEQ_TRY(K::tanh_bwd(d_out, ld, act, dp, B, C, st));
      }
      seq_gemm<T>(false, false, B, IW, G, dp, G, a.wcat[l], IW, false, wk.d_inp, IW);
      if (c.lstm) NTM_SEQ_TRY(copy_rows(dH + l * B * C, C, wk.d_inp + in_l, IW, B, C, st));
      d_out = wk.d_inp;
      ld = IW;
    }
    NTM_SEQ_TRY(copy_rows(dR, RW, wk.d_inp, ld, B, RW, st));
    if (a.len != nullptr) {
      NTM_SEQ_TRY(K::carry_finished(a.len, t, false, wk.stash, dM, dW, dR, dH, dC, c, st));
    }
  }

  // -- gradients of x and every parameter: one product each over all T*B rows -----------------
  seq_gemm<T>(false, false, TB, F, G, wk.d_pre[0], G, a.w_ih0, F + RW, false, a.d_x, F);
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t IW = c.inp_width(l), in_l = c.layer_in(l), in_full = l == 0 ? F + RW : C;
    const T* dp = wk.d_pre[l];
    if (l == 0) seq_gemm<T>(true, false, G, F, TB, dp, G, a.x, F, false, a.d_wi[0], in_full);
    const int64_t off = l == 0 ? F : 0;
    seq_gemm<T>(true, false, G, in_l, TB, dp, G, a.inp[l], IW, false, a.d_wi[l] + off, in_full);
    NTM_SEQ_TRY(K::column_sums(dp, TB, G, a.d_b[l], wk.col, st));
    if (c.lstm) {
      seq_gemm<T>(true, false, G, C, TB, dp, G, a.inp[l] + in_l, IW, false, a.d_whh[l], C);
      NTM_SEQ_TRY(copy_n(a.d_b2[l], a.d_b[l], G, st));
    }
  }
  seq_gemm<T>(true, false, P, C, TB, wk.d_raw, P, a.out_in, CR, false, a.d_wheads, C);
  NTM_SEQ_TRY(K::column_sums(wk.d_raw, TB, P, a.d_bheads, wk.col, st));
  seq_gemm<T>(true, false, O, CR, TB, a.d_logits, O, a.out_in, CR, false, a.d_wout, CR);
  NTM_SEQ_TRY(K::column_sums(a.d_logits, TB, O, a.d_bout, wk.col, st));
  return cudaSuccess;
}

template size_t sequence_bwd_workspace_bytes<float>(const SeqConfig&);
template size_t sequence_bwd_workspace_bytes<double>(const SeqConfig&);
template cudaError_t sequence_backward<float>(const SeqConfig&, const SeqBwdArgs<float>&,
                                              cudaStream_t);
template cudaError_t sequence_backward<double>(const SeqConfig&, const SeqBwdArgs<double>&,
                                               cudaStream_t);

}  // namespace cuda
}  // namespace ntm_fast
