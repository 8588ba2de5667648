// Torch binding of the CUDA whole-sequence ops (compiled only in the CUDA build): the checks of
// sequence_checks.h (the CPU op's messages; every tensor on x's device), the outputs, the saved
// tensors and one workspace per call, then one call of the torch-free driver
// (sequence_fwd.cu / sequence_bwd.cu) on the current stream. Also defines seq_gemm, the
// drivers' matrix product: ATen's CUDA matmul (cuBLAS) on views of the drivers' buffers, so
// torch's matmul settings (TF32 off by default) apply as they do to the reference.
#include <ATen/Dispatch.h>
#include <ATen/ops/add.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

#include "../common.h"
#include "../sequence_checks.h"
#include "sequence_launchers.h"

namespace ntm_fast {
namespace cuda {

template <typename T>
void seq_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
              const T* b, int64_t ldb, bool accumulate, T* c, int64_t ldc) {
  const c10::Device dev(c10::kCUDA, c10::cuda::current_device());
  const auto opt = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value).device(dev);
  // A row-major (rows, cols) matrix with leading dimension ld; no allocation, no copy.
  auto view = [&](const T* p, int64_t rows, int64_t cols, int64_t ld) {
    return at::for_blob(const_cast<T*>(p), {rows, cols})
        .strides({ld, 1})
        .options(opt)
        .target_device(dev)
        .make_tensor();
  };
  const at::Tensor A = ta ? view(a, k, m, lda).t() : view(a, m, k, lda);
  const at::Tensor Bm = tb ? view(b, n, k, ldb).t() : view(b, k, n, ldb);
  at::Tensor Cm = view(c, m, n, ldc);
  if (accumulate) {
    Cm.addmm_(A, Bm);
  } else {
    at::mm_out(Cm, A, Bm);
  }
}

template void seq_gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t,
                              const float*, int64_t, bool, float*, int64_t);
template void seq_gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t,
                               const double*, int64_t, bool, double*, int64_t);

}  // namespace cuda

namespace {

template <typename T>
T* ptr(const at::Tensor& t) {
  return t.data_ptr<T>();
}
template <typename T>
std::vector<T*> ptrs(const std::vector<at::Tensor>& v) {
  std::vector<T*> out;
  for (const auto& t : v) out.push_back(t.defined() ? ptr<T>(t) : nullptr);
  return out;
}

// The parameters in the drivers' layout (once per call): per layer the weight without x's
// columns beside weight_hh (one product per layer and step) and the summed biases.
struct Weights {
  std::vector<at::Tensor> wcat, bias;
  at::Tensor w_ih0, w_heads, b_heads, w_out, b_out;
  Weights(const SeqConfig& c, const std::vector<at::Tensor>& prm) {
    for (int64_t l = 0; l < c.L; ++l) {
      const at::Tensor& wi = prm[l * c.per_layer()];
      at::Tensor w_in = l == 0 ? wi.narrow(1, c.F, c.R * c.W) : wi;
      wcat.push_back((c.lstm ? at::cat({w_in, prm[l * 4 + 1]}, 1) : w_in).contiguous());
      const at::Tensor b = c.lstm ? at::add(prm[l * 4 + 2], prm[l * 4 + 3]) : prm[l * 2 + 1];
      bias.push_back(b.contiguous());
    }
    const int64_t base = c.L * c.per_layer();
    w_ih0 = prm[0].contiguous();
    w_heads = prm[base].contiguous();
    b_heads = prm[base + 1].contiguous();
    w_out = prm[base + 2].contiguous();
    b_out = prm[base + 3].contiguous();
  }
};

at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

template <typename T>
std::vector<at::Tensor> forward(const SeqConfig& c, const at::Tensor& x, const at::Tensor& memory,
                                const at::Tensor& reads, const at::Tensor& weightings,
                                const std::vector<at::Tensor>& st,
                                const std::vector<at::Tensor>& pr, const at::Tensor& len,
                                bool save) {
  const int64_t Ts = c.T, B = c.B, N = c.N, W = c.W, R = c.R, H = c.H, C = c.C, L = c.L;
  const int64_t G = c.gate_width();
  const auto opt = x.options();
  const Weights wt(c, pr);
  const at::Tensor xc = x.contiguous(), m0 = memory.contiguous(), r0 = reads.contiguous();
  const at::Tensor w0 = weightings.contiguous();
  const at::Tensor h0 = c.lstm ? st[0].contiguous() : at::Tensor();
  const at::Tensor c0 = c.lstm ? st[1].contiguous() : at::Tensor();
  at::Tensor logits = new_output({Ts, B, c.O}, opt), mem_out = new_output({B, N, W}, opt);
  at::Tensor reads_out = new_output({B, R, W}, opt), w_state = new_output({B, H, N}, opt);
  at::Tensor h_out, c_out;
  if (c.lstm) {
    h_out = new_output({L, B, C}, opt);
    c_out = new_output({L, B, C}, opt);
  }
  at::Tensor mem_hist = new_output({save ? Ts : 2, B, N, W}, opt);
  at::Tensor w_hist = new_output({save ? Ts + 1 : 2, B, H, N}, opt);
  at::Tensor raw = new_output({save ? Ts : 1, B, c.P}, opt);
  at::Tensor out_in = new_output({Ts, B, C + R * W}, opt);
  std::vector<at::Tensor> inp(L), act(L), cells(L);
  for (int64_t l = 0; l < L; ++l) {
    inp[l] = new_output({save ? Ts : 1, B, c.inp_width(l)}, opt);
    act[l] = new_output({save ? Ts : 1, B, G}, opt);
    if (c.lstm) cells[l] = new_output({save ? Ts + 1 : 2, B, C}, opt);
  }
  const at::Tensor ws = workspace(cuda::sequence_fwd_workspace_bytes<T>(c), x);
  const std::vector<T*> wcat = ptrs<T>(wt.wcat), bias = ptrs<T>(wt.bias);
  const std::vector<T*> inp_p = ptrs<T>(inp), act_p = ptrs<T>(act), cells_p = ptrs<T>(cells);
  cuda::SeqFwdArgs<T> a{};
  a.x = ptr<T>(xc);
  a.memory0 = ptr<T>(m0);
  a.reads0 = ptr<T>(r0);
  a.w0 = ptr<T>(w0);
  a.h0 = c.lstm ? ptr<T>(h0) : nullptr;
  a.c0 = c.lstm ? ptr<T>(c0) : nullptr;
  a.len = len.defined() ? len.const_data_ptr<int64_t>() : nullptr;
  a.wcat = wcat.data();
  a.bias = bias.data();
  a.w_ih0 = ptr<T>(wt.w_ih0);
  a.w_heads = ptr<T>(wt.w_heads);
  a.b_heads = ptr<T>(wt.b_heads);
  a.w_out = ptr<T>(wt.w_out);
  a.b_out = ptr<T>(wt.b_out);
  a.logits = ptr<T>(logits);
  a.mem_out = ptr<T>(mem_out);
  a.reads_out = ptr<T>(reads_out);
  a.w_out_state = ptr<T>(w_state);
  a.h_out = c.lstm ? ptr<T>(h_out) : nullptr;
  a.c_out = c.lstm ? ptr<T>(c_out) : nullptr;
  a.mem_hist = ptr<T>(mem_hist);
  a.w_hist = ptr<T>(w_hist);
  a.raw = ptr<T>(raw);
  a.out_in = ptr<T>(out_in);
  a.inp = inp_p.data();
  a.act = act_p.data();
  a.cells = cells_p.data();
  a.save = save;
  a.workspace = ws.data_ptr();
  C10_CUDA_CHECK(cuda::sequence_forward<T>(c, a, c10::cuda::getCurrentCUDAStream().stream()));
  std::vector<at::Tensor> out = {logits, mem_out, reads_out, w_state};
  if (c.lstm) out.insert(out.end(), {h_out, c_out});
  if (!save) return out;
  out.insert(out.end(), {mem_hist, w_hist, raw, out_in});
  for (int64_t l = 0; l < L; ++l) {
    out.push_back(inp[l]);
    out.push_back(act[l]);
    if (c.lstm) out.push_back(cells[l]);
  }
  return out;
}

template <typename T>
std::vector<at::Tensor> backward(const SeqConfig& c,
                                 const std::vector<c10::optional<at::Tensor>>& gr,
                                 const at::Tensor& x, const std::vector<at::Tensor>& pr,
                                 const std::vector<at::Tensor>& sv, const at::Tensor& len) {
  const int64_t Ts = c.T, B = c.B, N = c.N, W = c.W, R = c.R, H = c.H, C = c.C, L = c.L;
  const int64_t G = c.gate_width(), P = c.P, O = c.O, CR = C + R * W;
  const auto opt = x.options();
  const Weights wt(c, pr);
  const at::Tensor xc = x.contiguous();
  auto grad_or_zeros = [&](size_t i, c10::IntArrayRef shape) {
    const bool given = i < gr.size() && gr[i].has_value() && gr[i]->defined();
    return given ? gr[i]->clone(at::MemoryFormat::Contiguous) : at::zeros(shape, opt);
  };
  at::Tensor d_logits = grad_or_zeros(0, {Ts, B, O}), d_mem = grad_or_zeros(1, {B, N, W});
  at::Tensor d_reads = grad_or_zeros(2, {B, R, W}), d_w = grad_or_zeros(3, {B, H, N});
  at::Tensor d_h = c.lstm ? grad_or_zeros(4, {L, B, C}) : at::Tensor();
  at::Tensor d_c = c.lstm ? grad_or_zeros(5, {L, B, C}) : at::Tensor();
  auto history_grad = [&](size_t i) {  // the histories' (history=True), or undefined
    const bool given = i < gr.size() && gr[i].has_value() && gr[i]->defined();
    return given ? gr[i]->contiguous() : at::Tensor();
  };
  const at::Tensor d_w_hist = history_grad(4 + c.n_state());
  const at::Tensor d_m_hist = history_grad(5 + c.n_state());
  const size_t ip = static_cast<size_t>(6 + c.n_state());
  const bool p_given = ip < gr.size() && gr[ip].has_value() && gr[ip]->defined();
  // With lengths the driver zeroes its finished rows in place, so it gets a copy; without,
  // it only reads it.
  const at::Tensor d_p_hist = !p_given        ? at::Tensor()
                              : len.defined() ? gr[ip]->clone(at::MemoryFormat::Contiguous)
                                              : gr[ip]->contiguous();
  at::Tensor d_x = new_output({Ts, B, c.F}, opt);
  std::vector<at::Tensor> d_wi(L), d_whh(L), d_b(L), d_b2(L), inp(L), act(L), cells(L);
  for (int64_t l = 0; l < L; ++l) {
    d_wi[l] = new_output({G, l == 0 ? c.F + R * W : C}, opt);
    d_b[l] = new_output({G}, opt);
    if (c.lstm) {
      d_whh[l] = new_output({G, C}, opt);
      d_b2[l] = new_output({G}, opt);
    }
    const int64_t s = kSavedFixed + l * saved_per_layer(c);
    inp[l] = sv[s];
    act[l] = sv[s + 1];
    if (c.lstm) cells[l] = sv[s + 2];
  }
  at::Tensor d_wh = new_output({P, C}, opt), d_bh = new_output({P}, opt);
  at::Tensor d_wo = new_output({O, CR}, opt), d_bo = new_output({O}, opt);
  const at::Tensor ws = workspace(cuda::sequence_bwd_workspace_bytes<T>(c), x);
  const std::vector<T*> wcat = ptrs<T>(wt.wcat), inp_p = ptrs<T>(inp), act_p = ptrs<T>(act);
  const std::vector<T*> cells_p = ptrs<T>(cells), d_wi_p = ptrs<T>(d_wi);
  const std::vector<T*> d_whh_p = ptrs<T>(d_whh), d_b_p = ptrs<T>(d_b), d_b2_p = ptrs<T>(d_b2);
  cuda::SeqBwdArgs<T> a{};
  a.x = ptr<T>(xc);
  a.len = len.defined() ? len.const_data_ptr<int64_t>() : nullptr;
  a.wcat = wcat.data();
  a.w_ih0 = ptr<T>(wt.w_ih0);
  a.w_heads = ptr<T>(wt.w_heads);
  a.w_out = ptr<T>(wt.w_out);
  a.mem_hist = ptr<T>(sv[0]);
  a.w_hist = ptr<T>(sv[1]);
  a.raw = ptr<T>(sv[2]);
  a.out_in = ptr<T>(sv[3]);
  a.inp = inp_p.data();
  a.act = act_p.data();
  a.cells = cells_p.data();
  a.d_logits = ptr<T>(d_logits);
  a.d_mem = ptr<T>(d_mem);
  a.d_reads = ptr<T>(d_reads);
  a.d_w = ptr<T>(d_w);
  a.d_h = c.lstm ? ptr<T>(d_h) : nullptr;
  a.d_c = c.lstm ? ptr<T>(d_c) : nullptr;
  a.d_w_hist = d_w_hist.defined() ? ptr<T>(d_w_hist) : nullptr;
  a.d_m_hist = d_m_hist.defined() ? ptr<T>(d_m_hist) : nullptr;
  a.d_p_hist = p_given ? ptr<T>(d_p_hist) : nullptr;
  a.d_x = ptr<T>(d_x);
  a.d_wi = d_wi_p.data();
  a.d_whh = d_whh_p.data();
  a.d_b = d_b_p.data();
  a.d_b2 = d_b2_p.data();
  a.d_wheads = ptr<T>(d_wh);
  a.d_bheads = ptr<T>(d_bh);
  a.d_wout = ptr<T>(d_wo);
  a.d_bout = ptr<T>(d_bo);
  a.workspace = ws.data_ptr();
  C10_CUDA_CHECK(cuda::sequence_backward<T>(c, a, c10::cuda::getCurrentCUDAStream().stream()));
  std::vector<at::Tensor> out = {d_x, d_mem, d_reads, d_w};
  if (c.lstm) out.insert(out.end(), {d_h, d_c});
  for (int64_t l = 0; l < L; ++l) {
    out.push_back(d_wi[l]);
    if (c.lstm) out.insert(out.end(), {d_whh[l], d_b[l], d_b2[l]});
    if (!c.lstm) out.push_back(d_b[l]);
  }
  out.insert(out.end(), {d_wh, d_bh, d_wo, d_bo});
  return out;
}

void check_cuda(const char* op, const at::Tensor& x) {
  TORCH_CHECK_VALUE(x.is_cuda(), op, ": x: expected a CUDA tensor (every tensor on x's device), "
                    "got ", describe(x));
}

std::vector<at::Tensor> sequence_fwd_cuda(const at::Tensor& x, const at::Tensor& memory,
                                          const at::Tensor& reads, const at::Tensor& weightings,
                                          at::TensorList state, at::TensorList params,
                                          const c10::optional<at::Tensor>& lengths,
                                          int64_t read_heads, int64_t shift_range, bool uniform,
                                          bool lstm, bool save) {
  const char* op = "ntm_fast::sequence_fwd";
  const SequenceArgs a = sequence_fwd_args(op, x, memory, reads, weightings, state, params,
                                           lengths, read_heads, shift_range, uniform, lstm);
  check_cuda(op, x);
  const c10::cuda::CUDAGuard guard(x.device());
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ntm_fast::sequence_fwd", [&] {
    out = forward<scalar_t>(a.config, x, memory, reads, weightings, a.state, a.params,
                            a.lengths, save);
  });
  return out;
}

std::vector<at::Tensor> sequence_bwd_cuda(const c10::List<c10::optional<at::Tensor>>& grads,
                                          const at::Tensor& x, at::TensorList state,
                                          at::TensorList params, at::TensorList saved,
                                          const c10::optional<at::Tensor>& lengths,
                                          int64_t read_heads, int64_t shift_range, bool uniform,
                                          bool lstm) {
  const char* op = "ntm_fast::sequence_bwd";
  const SequenceArgs a = sequence_bwd_args(op, grads, x, state, params, saved, lengths,
                                           read_heads, shift_range, uniform, lstm);
  check_cuda(op, x);
  const c10::cuda::CUDAGuard guard(x.device());
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ntm_fast::sequence_bwd", [&] {
    out = backward<scalar_t>(a.config, a.grads, x, a.params, a.saved, a.lengths);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("sequence_fwd", &sequence_fwd_cuda);
  m.impl("sequence_bwd", &sequence_bwd_cuda);
}

}  // namespace ntm_fast
