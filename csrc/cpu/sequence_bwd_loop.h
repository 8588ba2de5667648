// The CPU whole-sequence backward loop (see sequence_bwd.cpp), compiled for the baseline
// target and for AVX2 + FMA like sequence_fwd_loop.h.
#pragma once

#include "activations.h"
#include "sequence.h"

namespace ntm_fast {
namespace NTM_CPU_NS {

// out[j] = sum over rows r of a[r * n + j], rows in order (deterministic).
template <typename T>
void column_sums(const T* a, int64_t rows, int64_t n, T* out) {
  std::fill_n(out, n, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) out[j] += a[r * n + j];
  }
}

template <typename T>
void sequence_backward(const SeqConfig& c, const std::vector<c10::optional<at::Tensor>>& grads,
                       const at::Tensor& x_, const std::vector<at::Tensor>& state,
                       const std::vector<at::Tensor>& prm, const std::vector<at::Tensor>& saved,
                       const int64_t* len, std::vector<at::Tensor>& out) {
  const int64_t Ts = c.T, B = c.B, F = c.F, N = c.N, W = c.W, R = c.R, H = c.H, Hw = c.Hw;
  const int64_t C = c.C, RW = R * W, G = c.gate_width(), P = c.P, O = c.O, CR = C + RW;
  const int64_t TB = Ts * B;
  const auto opt = x_.options();
  const MemDims md{B, H, N, W, c.S}, mw{B, Hw, N, W, 1};
  auto ptr = [](const at::Tensor& t) { return t.data_ptr<T>(); };
  auto grad_or_zeros = [&](size_t i, c10::IntArrayRef shape) {
    const bool given = i < grads.size() && grads[i].has_value() && grads[i]->defined();
    return given ? grads[i]->contiguous().clone() : at::zeros(shape, opt);
  };
  const at::Tensor x = x_.contiguous();
  const at::Tensor mem_hist = saved[0], w_hist = saved[1], raw = saved[2], out_in = saved[3];
  const at::Tensor keep = saved.back();
  const int64_t CK = content_keep(md);
  std::vector<at::Tensor> inp(c.L), act(c.L), cells(c.L), wcat(c.L);
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t s = kSavedFixed + l * saved_per_layer(c);
    inp[l] = saved[s];
    act[l] = saved[s + 1];
    if (c.lstm) cells[l] = saved[s + 2];
    const at::Tensor& wi = prm[l * c.per_layer()];
    at::Tensor w_in = l == 0 ? wi.narrow(1, F, RW) : wi;
    wcat[l] = (c.lstm ? at::cat({w_in, prm[l * 4 + 1]}, 1) : w_in).contiguous();
  }
  const int64_t base = c.L * c.per_layer();
  const at::Tensor w_ih0 = prm[0].contiguous(), w_heads = prm[base].contiguous();
  const at::Tensor w_out = prm[base + 2].contiguous();

  // Upstream gradients; logits past a sequence's end were zeroed, so theirs are dropped.
  at::Tensor d_logits = grad_or_zeros(0, {Ts, B, O});
  at::Tensor d_mem = grad_or_zeros(1, {B, N, W});
  at::Tensor d_reads = grad_or_zeros(2, {B, R, W}).view({B, RW});
  at::Tensor d_w = grad_or_zeros(3, {B, H, N});
  at::Tensor d_h = c.lstm ? grad_or_zeros(4, {c.L, B, C}) : at::Tensor();
  at::Tensor d_c = c.lstm ? grad_or_zeros(5, {c.L, B, C}) : at::Tensor();
  // The histories' gradients (T, B, H, N) and (T, B, N, W), if given: added to dL/dw_t and
  // dL/dM_t as step t begins; the raw head parameters' (T, B, P) to dL/draw_t of the active
  // rows (a finished row's step computes nothing).
  auto history_grad = [&](size_t i) {
    const bool given = i < grads.size() && grads[i].has_value() && grads[i]->defined();
    return given ? grads[i]->contiguous() : at::Tensor();
  };
  const at::Tensor d_w_hist = history_grad(4 + c.n_state());
  const at::Tensor d_m_hist = history_grad(5 + c.n_state());
  const at::Tensor d_p_hist = history_grad(6 + c.n_state());
  auto active = [&](int64_t t, int64_t b) { return len == nullptr || t < len[b]; };
  T* dlg = ptr(d_logits);
  for (int64_t t = 0; t < Ts; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      if (!active(t, b)) std::fill_n(dlg + (t * B + b) * O, O, T(0));
    }
  }
  at::Tensor d_out_in = new_output({Ts, B, CR}, opt);
  gemm<T>(false, false, TB, CR, O, T(1), dlg, O, ptr(w_out), CR, T(0), ptr(d_out_in), CR);

  std::vector<at::Tensor> d_pre(c.L);
  for (int64_t l = 0; l < c.L; ++l) d_pre[l] = new_output({Ts, B, G}, opt);
  at::Tensor d_raw = new_output({Ts, B, P}, opt);
  HeadBufs<T> p(c), g(c);
  int64_t max_iw = 0;
  for (int64_t l = 0; l < c.L; ++l) max_iw = std::max(max_iw, c.inp_width(l));
  std::vector<T> dm_write(B * N * W), dm_addr(B * N * W), dw_write(B * Hw * N),
      dw_total(B * H * N), w_write(B * Hw * N), d_read(B * RW), d_top(B * C), d_inp(B * max_iw),
      d_layer(B * std::max(C, RW));
  ThreadScratch<T> addr_scratch(address_bwd_scratch(md)), write_scratch(write_bwd_scratch(mw));
  ThreadScratch<T> row_scratch(std::max(C, W));
  // Carried gradients of rows whose sequence has ended, restored after each step.
  const int64_t carry = N * W + H * N + RW + 2 * c.L * C;
  std::vector<T> stash(static_cast<size_t>(B * carry));

  for (int64_t t = Ts - 1; t >= 0; --t) {
    const T* M_prev = ptr(mem_hist) + t * B * N * W;
    const T* w_prev = ptr(w_hist) + t * B * H * N;
    const T* w_t = ptr(w_hist) + (t + 1) * B * H * N;
    const T* raw_t = ptr(raw) + t * B * P;
    T *dM = ptr(d_mem), *dW = ptr(d_w), *dR = ptr(d_reads);
    T *dH = c.lstm ? ptr(d_h) : nullptr, *dC = c.lstm ? ptr(d_c) : nullptr;
    if (d_w_hist.defined()) {  // before a finished row's carry: its w_t is w_{t-1}
      const T* dh = ptr(d_w_hist) + t * B * H * N;
      for (int64_t i = 0; i < B * H * N; ++i) dW[i] += dh[i];
    }
    if (d_m_hist.defined()) {
      const T* dh = ptr(d_m_hist) + t * B * N * W;
      for (int64_t i = 0; i < B * N * W; ++i) dM[i] += dh[i];
    }
    auto move_carry = [&](int64_t b, bool out_of_state) {  // state <-> stash, zeroing the state
      T* s = stash.data() + b * carry;
      auto mv = [&](T* state_row, int64_t n) {
        if (out_of_state) {
          std::copy_n(state_row, n, s);
          std::fill_n(state_row, n, T(0));
        } else {
          std::copy_n(s, n, state_row);
        }
        s += n;
      };
      mv(dM + b * N * W, N * W);
      mv(dW + b * H * N, H * N);
      mv(dR + b * RW, RW);
      for (int64_t l = 0; c.lstm && l < c.L; ++l) {
        mv(dH + (l * B + b) * C, C);
        mv(dC + (l * B + b) * C, C);
      }
    };
    for (int64_t b = 0; b < B; ++b) {
      if (!active(t, b)) move_carry(b, true);
    }
    for (int64_t b = 0; b < B; ++b) heads_activate_row(c, raw_t + b * P, b, p);
    const T* dout = ptr(d_out_in) + t * B * CR;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = 0; j < RW; ++j) d_read[b * RW + j] = dout[b * CR + C + j] + dR[b * RW + j];
      std::copy_n(w_t + (b * H + R) * N, Hw * N, w_write.data() + b * Hw * N);
    }
    // -- write, read and addressing backwards, one batch per task -------------------------------
    // One batch at a time through all four parts, so its rows of M_{t-1}, dM and the partial
    // gradients are still in cache for the next part (B*N*W floats are not, at large B).
    at::parallel_for(0, B, grain_for(4 * H * N * W), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        write_bwd_batches<T, T>(dM, M_prev, w_write.data(), p.erase.data(), p.add.data(),
                                dm_write.data(), dw_write.data(), g.erase.data(), g.add.data(),
                                mw, b, b + 1, write_scratch.get());
        const T* Mb = M_prev + b * N * W;
        const T* dr = d_read.data() + b * RW;
        T* dwt = dw_total.data() + b * H * N;
        for (int64_t h = 0; h < R; ++h) {  // read: dL/dw_h[i] = dr_h . M_i
          for (int64_t i = 0; i < N; ++i) {
            dwt[h * N + i] = vdot(dr + h * W, Mb + i * W, W) + dW[(b * H + h) * N + i];
          }
        }
        for (int64_t i = 0; i < Hw * N; ++i) {
          dwt[R * N + i] = dw_write[b * Hw * N + i] + dW[(b * H + R) * N + i];
        }
        address_bwd_batches<T, T>(dw_total.data(), M_prev, p.key.data(), p.beta.data(),
                                  p.gate.data(), p.shift.data(), p.gamma.data(), w_prev,
                                  dm_addr.data(), g.key.data(), g.beta.data(), g.gate.data(),
                                  g.shift.data(), g.gamma.data(), dW, md, b, b + 1,
                                  addr_scratch.get(), ptr(keep) + t * B * CK);
        // dL/dM_{t-1} = write + read + addressing parts
        T* rd = row_scratch.get();
        const T* wr = w_t + b * H * N;
        for (int64_t i = 0; i < N; ++i) {
          std::fill_n(rd, W, T(0));
          for (int64_t h = 0; h < R; ++h) {  // read: dL/dM_i = sum_h w_h[i] dr_h
            const T wv = wr[h * N + i];
            for (int64_t m = 0; m < W; ++m) rd[m] += wv * dr[h * W + m];
          }
          T* dMi = dM + (b * N + i) * W;
          const T *a = dm_write.data() + (b * N + i) * W, *z = dm_addr.data() + (b * N + i) * W;
          for (int64_t m = 0; m < W; ++m) dMi[m] = a[m] + rd[m] + z[m];
        }
      }
    });
    // -- heads and controller --------------------------------------------------------------------
    T* draw_t = ptr(d_raw) + t * B * P;
    for (int64_t b = 0; b < B; ++b) heads_grad_row(c, raw_t + b * P, b, p, g, draw_t + b * P);
    for (int64_t b = 0; d_p_hist.defined() && b < B; ++b) {
      if (!active(t, b)) continue;
      const T* dh = ptr(d_p_hist) + (t * B + b) * P;
      for (int64_t i = 0; i < P; ++i) draw_t[b * P + i] += dh[i];
    }
    for (int64_t b = 0; b < B; ++b) std::copy_n(dout + b * CR, C, d_top.data() + b * C);
    gemm<T>(false, false, B, C, P, T(1), draw_t, P, ptr(w_heads), C, T(1), d_top.data(), C);
    const T* d_out_l = d_top.data();
    for (int64_t l = c.L - 1; l >= 0; --l) {
      const int64_t IW = c.inp_width(l), in_l = c.layer_in(l);
      const T* a = ptr(act[l]) + t * B * G;
      T* dp = ptr(d_pre[l]) + t * B * G;
      if (c.lstm) {
        const T* cp = ptr(cells[l]) + t * B * C;
        const T* cn = ptr(cells[l]) + (t + 1) * B * C;
        T *dh = dH + l * B * C, *dc = dC + l * B * C;
        at::parallel_for(0, B, grain_for(40 * C), [&](int64_t b0, int64_t b1) {
          T* tc = row_scratch.get();  // tanh(c')
          for (int64_t b = b0; b < b1; ++b) {
            tanh_row(cn + b * C, tc, C);
            for (int64_t j = 0; j < C; ++j) {
              const int64_t k = b * C + j;
              dc[k] = lstm_unit_bwd(a + b * G, C, j, cp[k], tc[j], d_out_l[k] + dh[k], dc[k],
                                    dp + b * G);
            }
          }
        });
      } else {
        for (int64_t i = 0; i < B * C; ++i) dp[i] = tanh_grad(d_out_l[i], a[i]);
      }
      gemm<T>(false, false, B, IW, G, T(1), dp, G, ptr(wcat[l]), IW, T(0), d_inp.data(), IW);
      for (int64_t b = 0; b < B; ++b) {
        std::copy_n(d_inp.data() + b * IW, in_l, d_layer.data() + b * in_l);
        if (c.lstm) std::copy_n(d_inp.data() + b * IW + in_l, C, dH + (l * B + b) * C);
      }
      d_out_l = d_layer.data();
    }
    std::copy_n(d_layer.data(), B * RW, dR);
    for (int64_t b = 0; b < B; ++b) {
      if (!active(t, b)) move_carry(b, false);
    }
  }

  // -- gradients of x and every parameter: one product each over all T*B rows -------------------
  at::Tensor d_x = new_output({Ts, B, F}, opt);
  gemm<T>(false, false, TB, F, G, T(1), ptr(d_pre[0]), G, ptr(w_ih0), F + RW, T(0), ptr(d_x), F);
  out = {d_x, d_mem, d_reads.view({B, R, W}), d_w};
  if (c.lstm) {
    out.push_back(d_h);
    out.push_back(d_c);
  }
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t IW = c.inp_width(l), in_l = c.layer_in(l), in_full = l == 0 ? F + RW : C;
    const T* dp = ptr(d_pre[l]);
    const T* in = ptr(inp[l]);
    at::Tensor d_wi = new_output({G, in_full}, opt);
    T* dwi = ptr(d_wi);
    if (l == 0) gemm<T>(true, false, G, F, TB, T(1), dp, G, ptr(x), F, T(0), dwi, in_full);
    const int64_t off = l == 0 ? F : 0;
    gemm<T>(true, false, G, in_l, TB, T(1), dp, G, in, IW, T(0), dwi + off, in_full);
    at::Tensor d_b = new_output({G}, opt);
    column_sums(dp, TB, G, ptr(d_b));
    out.push_back(d_wi);
    if (c.lstm) {
      at::Tensor d_wh = new_output({G, C}, opt);
      gemm<T>(true, false, G, C, TB, T(1), dp, G, in + in_l, IW, T(0), ptr(d_wh), C);
      out.push_back(d_wh);
      out.push_back(d_b);
      out.push_back(d_b.clone());
    } else {
      out.push_back(d_b);
    }
  }
  at::Tensor d_wh = new_output({P, C}, opt), d_bh = new_output({P}, opt);
  gemm<T>(true, false, P, C, TB, T(1), ptr(d_raw), P, ptr(out_in), CR, T(0), ptr(d_wh), C);
  column_sums(ptr(d_raw), TB, P, ptr(d_bh));
  at::Tensor d_wo = new_output({O, CR}, opt), d_bo = new_output({O}, opt);
  gemm<T>(true, false, O, CR, TB, T(1), dlg, O, ptr(out_in), CR, T(0), ptr(d_wo), CR);
  column_sums(dlg, TB, O, ptr(d_bo));
  out.insert(out.end(), {d_wh, d_bh, d_wo, d_bo});
}

}  // namespace NTM_CPU_NS
}  // namespace ntm_fast
