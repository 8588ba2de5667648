// CUDA whole-sequence forward: all T steps of the NTM in one host call that only issues work
// on one stream, the order of operations of the CPU loop (csrc/cpu/sequence_fwd_loop.h).
// Per step: per controller layer a strided copy of its input, one cuBLAS product (seq_gemm)
// and the activation kernel; the heads' product and activations; then the memory ops through
// their launchers (launchers.h: address_fwd over all heads, read_fwd on the read heads' rows,
// write_fwd on the write heads' rows) and the lengths mask. The x part of layer 0 and the
// output layer are one product each over all T*B rows. Workspace: see FwdWork.
#include "sequence_launchers.h"

namespace ntm_fast {
namespace cuda {
namespace {

// The step buffers, carved from one workspace.
template <typename T>
struct FwdWork {
  T *x_proj, *reads, *r_new, *w_read, *w_write, *addr;
  HeadPtrs<T> p;
  int64_t elems;
  FwdWork(const SeqConfig& c, T* base) {
    Carve<T> w{base};
    x_proj = w.take(c.T * c.B * c.gate_width());  // x part of layer 0 + its bias, all steps
    reads = w.take(c.B * c.R * c.W);              // the state's reads
    r_new = w.take(c.B * c.R * c.W);              // this step's reads
    w_read = w.take(c.B * c.R * c.N);             // the read heads' rows of w_t
    w_write = w.take(c.B * c.Hw * c.N);           // the write heads' rows of w_t
    p = HeadPtrs<T>::carve(c, w);
    addr = w.take(workspace_elems(AddressFwdWorkspace{c.N}, c.B, c.H));  // acc_t<T> is T
    elems = w.used;
  }
};

}  // namespace

template <typename T>
size_t sequence_fwd_workspace_bytes(const SeqConfig& c) {
  return static_cast<size_t>(FwdWork<T>(c, nullptr).elems) * sizeof(T);
}

template <typename T>
cudaError_t sequence_forward(const SeqConfig& c, const SeqFwdArgs<T>& a, cudaStream_t st) {
  using K = Steps<T>;
  const int64_t Ts = c.T, B = c.B, F = c.F, N = c.N, W = c.W, R = c.R, H = c.H, Hw = c.Hw;
  const int64_t C = c.C, RW = R * W, G = c.gate_width(), P = c.P, O = c.O, CR = C + RW;
  const int64_t NW = N * W, HN = H * N;
  FwdWork<T> wk(c, static_cast<T*>(a.workspace));
  // The memory ops' params; per step only the memory and weighting pointers change.
  AddressFwdParams<T> address_p;
  address_p.set_sizes(B, H, N, W, c.S);
  address_p.key = wk.p.key;
  address_p.beta = wk.p.beta;
  address_p.gate = wk.p.gate;
  address_p.shift = wk.p.shift;
  address_p.gamma = wk.p.gamma;
  address_p.workspace = wk.addr;
  ReadFwdParams<T> read_p;  // on the read heads' rows of w_t
  read_p.set_sizes(B, R, N, W, 0);
  read_p.w = wk.w_read;
  read_p.out = wk.r_new;
  WriteFwdParams<T> write_p;  // on the write heads' rows
  write_p.set_sizes(B, Hw, N, W, 0);
  write_p.w = wk.w_write;
  write_p.erase = wk.p.erase;
  write_p.add = wk.p.add;
  auto ring = [&](int64_t t) { return a.save ? t : t % 2; };  // slots of mem_hist, w_hist, cells

  NTM_SEQ_TRY(copy_n(a.mem_hist, a.memory0, B * NW, st));
  NTM_SEQ_TRY(copy_n(a.w_hist, a.w0, B * HN, st));
  NTM_SEQ_TRY(copy_n(wk.reads, a.reads0, B * RW, st));
  if (c.lstm) {
    NTM_SEQ_TRY(copy_n(a.h_out, a.h0, c.L * B * C, st));
    for (int64_t l = 0; l < c.L; ++l) NTM_SEQ_TRY(copy_n(a.cells[l], a.c0 + l * B * C, B * C, st));
  }
  NTM_SEQ_TRY(K::fill_rows(wk.x_proj, a.bias[0], Ts * B, G, st));
  seq_gemm<T>(false, true, Ts * B, G, F, a.x, F, a.w_ih0, F + RW, true, wk.x_proj, G);

  for (int64_t t = 0; t < Ts; ++t) {
    const int64_t ts = a.save ? t : 0;  // this step's slot of raw, inp, act
    const T* M_prev = a.mem_hist + ring(t) * B * NW;
    T* M_next = t + 1 == Ts ? a.mem_out : a.mem_hist + ring(t + 1) * B * NW;
    const T* w_prev = a.w_hist + ring(t) * B * HN;
    T* w_new = a.w_hist + ring(t + 1) * B * HN;

    // -- controller: input [layer_in | h_{t-1}], one product, activations ---------------------
    const T* layer_in = wk.reads;
    int64_t in_w = RW;
    for (int64_t l = 0; l < c.L; ++l) {
      const int64_t IW = c.inp_width(l);
      T* in_l = a.inp[l] + ts * B * IW;
      T* act = a.act[l] + ts * B * G;
      NTM_SEQ_TRY(copy_rows(in_l, IW, layer_in, in_w, B, in_w, st));
      if (c.lstm) NTM_SEQ_TRY(copy_rows(in_l + in_w, IW, a.h_out + l * B * C, C, B, C, st));
      if (l == 0) {
        NTM_SEQ_TRY(copy_n(act, wk.x_proj + t * B * G, B * G, st));
      } else {
        NTM_SEQ_TRY(K::fill_rows(act, a.bias[l], B, G, st));
      }
      seq_gemm<T>(false, true, B, G, IW, in_l, IW, a.wcat[l], IW, true, act, G);
      if (c.lstm) {
        T* h = a.h_out + l * B * C;
        NTM_SEQ_TRY(K::lstm_fwd(act, a.cells[l] + ring(t) * B * C, a.cells[l] + ring(t + 1) * B * C,
                                h, a.len, t, B, C, st));
        layer_in = h;
      } else {
        NTM_SEQ_TRY(K::tanh_fwd(act, B * C, st));
        layer_in = act;
      }
      in_w = C;
    }
    // -- heads, addressing, read (from M_{t-1}), write ----------------------------------------
    T* out_row = a.out_in + t * B * CR;
    NTM_SEQ_TRY(copy_rows(out_row, CR, layer_in, C, B, C, st));
    T* raw_t = a.raw + ts * B * P;
    NTM_SEQ_TRY(K::fill_rows(raw_t, a.b_heads, B, P, st));
    seq_gemm<T>(false, true, B, P, C, out_row, CR, a.w_heads, C, true, raw_t, P);
    NTM_SEQ_TRY(K::heads_activate(c, raw_t, wk.p, st));
    address_p.memory = M_prev;
    address_p.w_prev = w_prev;
    address_p.out = w_new;
    NTM_SEQ_TRY(address_fwd(address_p, st));
    NTM_SEQ_TRY(copy_rows(wk.w_read, R * N, w_new, HN, B, R * N, st));
    NTM_SEQ_TRY(copy_rows(wk.w_write, Hw * N, w_new + R * N, HN, B, Hw * N, st));
    read_p.memory = M_prev;
    NTM_SEQ_TRY(read_fwd(read_p, st));
    NTM_SEQ_TRY(copy_rows(out_row + C, CR, wk.r_new, RW, B, RW, st));
    write_p.memory = M_prev;
    write_p.out = M_next;
    NTM_SEQ_TRY(write_fwd(write_p, st));
    // -- finished sequences keep their state (lengths); the others take the new reads ---------
    NTM_SEQ_TRY(K::keep_finished(a.len, t, M_prev, M_next, w_prev, w_new, wk.r_new, wk.reads, c,
                                 st));
  }
  // -- output layer over all T*B rows; steps past a sequence's end give zero logits -----------
  NTM_SEQ_TRY(K::fill_rows(a.logits, a.b_out, Ts * B, O, st));
  seq_gemm<T>(false, true, Ts * B, O, CR, a.out_in, CR, a.w_out, CR, true, a.logits, O);
  if (a.len != nullptr) NTM_SEQ_TRY(K::zero_finished(a.logits, a.len, Ts, B, O, st));
  NTM_SEQ_TRY(copy_n(a.reads_out, wk.reads, B * RW, st));
  NTM_SEQ_TRY(copy_n(a.w_out_state, a.w_hist + ring(Ts) * B * HN, B * HN, st));
  for (int64_t l = 0; c.lstm && l < c.L; ++l) {
    NTM_SEQ_TRY(copy_n(a.c_out + l * B * C, a.cells[l] + ring(Ts) * B * C, B * C, st));
  }
  return cudaSuccess;
}

template size_t sequence_fwd_workspace_bytes<float>(const SeqConfig&);
template size_t sequence_fwd_workspace_bytes<double>(const SeqConfig&);
template cudaError_t sequence_forward<float>(const SeqConfig&, const SeqFwdArgs<float>&,
                                             cudaStream_t);
template cudaError_t sequence_forward<double>(const SeqConfig&, const SeqFwdArgs<double>&,
                                              cudaStream_t);

}  // namespace cuda
}  // namespace ntm_fast
