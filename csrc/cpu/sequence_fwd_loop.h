// The CPU whole-sequence forward loop (see sequence_fwd.cpp), as a header so that it is
// compiled twice: for the baseline x86-64/arm64 target (namespace cpu) and for AVX2 + FMA
// (namespace avx2, sequence_avx2.cpp), chosen at run time (sequence_dispatch.h).
#pragma once

#include "activations.h"
#include "sequence.h"

namespace ntm_fast {
namespace NTM_CPU_NS {

template <typename T>
void sequence_forward(const SeqConfig& c, const at::Tensor& x, const at::Tensor& memory0,
                      const at::Tensor& reads0, const at::Tensor& w0,
                      const std::vector<at::Tensor>& state, const std::vector<at::Tensor>& prm,
                      const int64_t* len, bool save, std::vector<at::Tensor>& out) {
  const int64_t Ts = c.T, B = c.B, F = c.F, N = c.N, W = c.W, R = c.R, H = c.H, C = c.C;
  const int64_t RW = R * W, G = c.gate_width(), P = c.P, O = c.O, CR = C + RW;
  const auto opt = x.options();
  const MemDims md{B, H, N, W, c.S}, mw{B, c.Hw, N, W, 1};
  auto ptr = [](const at::Tensor& t) { return t.data_ptr<T>(); };

  // Layer weights with the recurrent part beside the input part (one product per layer and
  // step); layer 0's x columns are applied to all steps at once before the loop.
  std::vector<at::Tensor> wcat(c.L), bias(c.L);
  for (int64_t l = 0; l < c.L; ++l) {
    const at::Tensor& wi = prm[l * c.per_layer()];
    at::Tensor w_in = l == 0 ? wi.narrow(1, F, RW) : wi;
    wcat[l] = (c.lstm ? at::cat({w_in, prm[l * 4 + 1]}, 1) : w_in).contiguous();
    bias[l] = (c.lstm ? prm[l * 4 + 2] + prm[l * 4 + 3] : prm[l * 2 + 1]).contiguous();
  }
  const int64_t base = c.L * c.per_layer();
  const at::Tensor w_heads = prm[base].contiguous(), b_heads = prm[base + 1].contiguous();
  const at::Tensor w_out = prm[base + 2].contiguous(), b_out = prm[base + 3].contiguous();
  const at::Tensor w_ih0 = prm[0].contiguous();

  // Outputs and saved tensors.
  at::Tensor logits = new_output({Ts, B, O}, opt);
  at::Tensor mem_out = new_output({B, N, W}, opt), reads_out = new_output({B, R, W}, opt);
  at::Tensor w_out_state = new_output({B, H, N}, opt);
  at::Tensor h_out, c_out;
  if (c.lstm) {
    h_out = state[0].clone(at::MemoryFormat::Contiguous);
    c_out = state[1].clone(at::MemoryFormat::Contiguous);
  }
  static thread_local SavedPool pool;
  auto hist = [&](c10::IntArrayRef shape) {  // saved: from the pool; else 1-2 steps, fresh
    return save ? pool.get(shape, opt) : new_output(shape, opt);
  };
  at::Tensor mem_hist = hist({save ? Ts : 2, B, N, W});
  at::Tensor w_hist = hist({save ? Ts + 1 : 2, B, H, N});
  at::Tensor raw = hist({save ? Ts : 1, B, P});
  at::Tensor out_in = hist({Ts, B, CR});
  std::vector<at::Tensor> inp(c.L), act(c.L), cells(c.L);
  for (int64_t l = 0; l < c.L; ++l) {
    inp[l] = hist({save ? Ts : 1, B, c.inp_width(l)});
    act[l] = hist({save ? Ts : 1, B, G});
    if (c.lstm) {
      cells[l] = hist({save ? Ts + 1 : 2, B, C});
      cells[l][0].copy_(state[1][l]);
    }
  }
  const int64_t CK = content_keep(md);
  at::Tensor keep = save ? pool.get({Ts, B, CK}, opt) : at::Tensor();
  if (save) pool.end_call();
  mem_hist[0].copy_(memory0);
  w_hist[0].copy_(w0);
  at::Tensor reads_cur = reads0.contiguous().view({B, RW}).clone();
  at::Tensor x_proj = new_output({Ts, B, G}, opt);  // x part of layer 0 + its bias
  {
    const at::Tensor xc = x.contiguous();
    T* xp = ptr(x_proj);
    for (int64_t r = 0; r < Ts * B; ++r) std::copy_n(ptr(bias[0]), G, xp + r * G);
    gemm<T>(false, true, Ts * B, G, F, T(1), ptr(xc), F, ptr(w_ih0), F + RW, T(1), xp, G);
  }

  HeadBufs<T> p(c);
  std::vector<T> w_write(B * c.Hw * N);  // the write heads' rows of w_t, contiguous
  ThreadScratch<T> addr_scratch(address_fwd_scratch(md)), write_scratch(write_fwd_scratch(mw));
  ThreadScratch<T> row_scratch(C);
  T* h_cur = c.lstm ? ptr(h_out) : nullptr;

  for (int64_t t = 0; t < Ts; ++t) {
    const int64_t ts = save ? t : 0;  // index of this step's saved slot
    const T* M_prev = ptr(mem_hist) + (save ? t : t % 2) * B * N * W;
    T* M_next = t + 1 == Ts ? ptr(mem_out)
                            : ptr(mem_hist) + (save ? t + 1 : (t + 1) % 2) * B * N * W;
    const T* w_prev = ptr(w_hist) + (save ? t : t % 2) * B * H * N;
    T* w_new = ptr(w_hist) + (save ? t + 1 : (t + 1) % 2) * B * H * N;

    // -- controller ---------------------------------------------------------------------------
    const T* layer_in = ptr(reads_cur);
    int64_t in_w = RW;
    for (int64_t l = 0; l < c.L; ++l) {
      const int64_t IW = c.inp_width(l);
      T* in_l = ptr(inp[l]) + ts * B * IW;
      T* a = ptr(act[l]) + ts * B * G;
      for (int64_t b = 0; b < B; ++b) {
        std::copy_n(layer_in + b * in_w, in_w, in_l + b * IW);
        if (c.lstm) std::copy_n(h_cur + (l * B + b) * C, C, in_l + b * IW + in_w);
        if (l == 0) {
          std::copy_n(ptr(x_proj) + (t * B + b) * G, G, a + b * G);
        } else {
          std::copy_n(ptr(bias[l]), G, a + b * G);
        }
      }
      gemm<T>(false, true, B, G, IW, T(1), in_l, IW, ptr(wcat[l]), IW, T(1), a, G);
      if (c.lstm) {
        T* cell_prev = ptr(cells[l]) + (save ? t : t % 2) * B * C;
        T* cell_new = ptr(cells[l]) + (save ? t + 1 : (t + 1) % 2) * B * C;
        T* h = h_cur + l * B * C;
        at::parallel_for(0, B, grain_for(40 * C), [&](int64_t b0, int64_t b1) {
          T* tc = row_scratch.get();  // tanh(c')
          for (int64_t b = b0; b < b1; ++b) {
            T* gb = a + b * G;  // [i | f | g | o]: sigmoid, sigmoid, tanh, sigmoid
            sigmoid_row(gb, gb, 2 * C);
            tanh_row(gb + 2 * C, gb + 2 * C, C);
            sigmoid_row(gb + 3 * C, gb + 3 * C, C);
            T *cn = cell_new + b * C, *hb = h + b * C;
            const T* cp = cell_prev + b * C;
            if (len != nullptr && t >= len[b]) {  // finished: keep c and h
              std::copy_n(cp, C, cn);
              continue;
            }
            for (int64_t j = 0; j < C; ++j) {
              cn[j] = lstm_cell(gb[j], gb[C + j], gb[2 * C + j], cp[j]);
            }
            tanh_row(cn, tc, C);
            for (int64_t j = 0; j < C; ++j) hb[j] = gb[3 * C + j] * tc[j];
          }
        });
        layer_in = h;
      } else {
        tanh_row(a, a, B * C);
        layer_in = a;
      }
      in_w = C;
    }
    // -- heads, addressing, read, write --------------------------------------------------------
    T* out_row = ptr(out_in) + t * B * CR;
    for (int64_t b = 0; b < B; ++b) std::copy_n(layer_in + b * C, C, out_row + b * CR);
    T* raw_t = ptr(raw) + ts * B * P;
    for (int64_t b = 0; b < B; ++b) std::copy_n(ptr(b_heads), P, raw_t + b * P);
    gemm<T>(false, true, B, P, C, T(1), out_row, CR, ptr(w_heads), C, T(1), raw_t, P);
    for (int64_t b = 0; b < B; ++b) heads_activate_row(c, raw_t + b * P, b, p);
    // One batch at a time through addressing, read and write: its rows of M_{t-1} are still
    // in cache for the read and the write (B*N*W floats are not, at large B).
    const int64_t per_batch = H * N * (W + c.S) + 2 * c.Hw * N * W;
    at::parallel_for(0, B, grain_for(per_batch), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        address_fwd_batches<T, T>(M_prev, p.key.data(), p.beta.data(), p.gate.data(),
                                  p.shift.data(), p.gamma.data(), w_prev, w_new, md, b, b + 1,
                                  addr_scratch.get(), save ? ptr(keep) + t * B * CK : nullptr);
        std::copy_n(w_new + (b * H + R) * N, c.Hw * N, w_write.data() + b * c.Hw * N);
        // read (eq. 2) from M_{t-1}: r_h = sum_i w_h[i] M_i
        T* r = out_row + b * CR + C;
        std::fill_n(r, RW, T(0));
        const T* Mb = M_prev + b * N * W;
        for (int64_t h = 0; h < R; ++h) {
          const T* wr = w_new + (b * H + h) * N;
          for (int64_t i = 0; i < N; ++i) {
            const T wv = wr[i];
            const T* Mi = Mb + i * W;
            for (int64_t m = 0; m < W; ++m) r[h * W + m] += wv * Mi[m];
          }
        }
        write_fwd_rows<T, T>(M_prev, w_write.data(), p.erase.data(), p.add.data(), M_next, mw,
                             b * N, (b + 1) * N, write_scratch.get());
      }
    });
    // -- finished sequences keep their state (lengths) -----------------------------------------
    T* rc = ptr(reads_cur);
    for (int64_t b = 0; b < B; ++b) {
      if (len == nullptr || t < len[b]) {
        std::copy_n(out_row + b * CR + C, RW, rc + b * RW);
      } else {
        std::copy_n(M_prev + b * N * W, N * W, M_next + b * N * W);
        std::copy_n(w_prev + b * H * N, H * N, w_new + b * H * N);
      }
    }
  }
  // -- output layer over all T*B rows; steps past a sequence's end give zero logits ---------------
  {
    T* lg = ptr(logits);
    for (int64_t r = 0; r < Ts * B; ++r) std::copy_n(ptr(b_out), O, lg + r * O);
    gemm<T>(false, true, Ts * B, O, CR, T(1), ptr(out_in), CR, ptr(w_out), CR, T(1), lg, O);
    if (len != nullptr) {
      for (int64_t t = 0; t < Ts; ++t) {
        for (int64_t b = 0; b < B; ++b) {
          if (t >= len[b]) std::fill_n(lg + (t * B + b) * O, O, T(0));
        }
      }
    }
  }
  reads_out.view({B, RW}).copy_(reads_cur);
  w_out_state.copy_(w_hist[save ? Ts : Ts % 2]);
  out = {logits, mem_out, reads_out, w_out_state};
  if (c.lstm) {
    for (int64_t l = 0; l < c.L; ++l) c_out[l].copy_(cells[l][save ? Ts : Ts % 2]);
    out.push_back(h_out);
    out.push_back(c_out);
  }
  if (!save) return;
  out.push_back(mem_hist);
  out.push_back(w_hist);
  out.push_back(raw);
  out.push_back(out_in);
  for (int64_t l = 0; l < c.L; ++l) {
    out.push_back(inp[l]);
    out.push_back(act[l]);
    if (c.lstm) out.push_back(cells[l]);
  }
  out.push_back(keep);
}

}  // namespace NTM_CPU_NS
}  // namespace ntm_fast
