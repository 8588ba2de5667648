// CPU bindings of fused addressing (eqs. 5-9 in one pass): checks, contiguous inputs,
// outputs, then csrc/cpu/memory_kernels.h over batches in parallel (one batch per task, so the
// memory gradient sums over heads in a fixed order).
#include "op_common.h"

namespace ntm_fast {
namespace {
using namespace cpu;

at::Tensor address_fwd_cpu(const at::Tensor& memory_, const at::Tensor& key_,
                           const at::Tensor& beta_, const at::Tensor& gate_,
                           const at::Tensor& shift_, const at::Tensor& gamma_,
                           const at::Tensor& w_prev_) {
  const Dims d = check_address_args("ntm_fast::address_fwd", memory_, key_, beta_, gate_, shift_,
                                    gamma_, w_prev_);
  const auto memory = memory_.contiguous(), key = key_.contiguous(), beta = beta_.contiguous(),
             gate = gate_.contiguous(), shift = shift_.contiguous(), gamma = gamma_.contiguous(),
             w_prev = w_prev_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, memory.options());
  const MemDims md{d.B, d.H, d.N, d.W, d.S};
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::address_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    at::parallel_for(0, d.B, grain_for(d.H * d.N * (d.W + d.S)), [&](int64_t b0, int64_t b1) {
      std::vector<A> buf(static_cast<size_t>(address_fwd_scratch(md)));
      address_fwd_batches<T, A>(memory.const_data_ptr<T>(), key.const_data_ptr<T>(),
                                beta.const_data_ptr<T>(), gate.const_data_ptr<T>(),
                                shift.const_data_ptr<T>(), gamma.const_data_ptr<T>(),
                                w_prev.const_data_ptr<T>(), out.mutable_data_ptr<T>(), md, b0,
                                b1, buf.data());
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
address_bwd_cpu(const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& key_,
                const at::Tensor& beta_, const at::Tensor& gate_, const at::Tensor& shift_,
                const at::Tensor& gamma_, const at::Tensor& w_prev_) {
  const char* op = "ntm_fast::address_bwd";
  const Dims d = check_address_args(op, memory_, key_, beta_, gate_, shift_, gamma_, w_prev_);
  check_grad(op, grad_, {d.B, d.H, d.N}, memory_, "memory");
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), key = key_.contiguous(),
             beta = beta_.contiguous(), gate = gate_.contiguous(), shift = shift_.contiguous(),
             gamma = gamma_.contiguous(), w_prev = w_prev_.contiguous();
  const auto opts = memory.options();
  const int64_t B = d.B, H = d.H, N = d.N, W = d.W, S = d.S;
  at::Tensor g_memory = new_output({B, N, W}, opts), g_key = new_output({B, H, W}, opts),
             g_beta = new_output({B, H}, opts), g_gate = new_output({B, H}, opts),
             g_shift = new_output({B, H, S}, opts), g_gamma = new_output({B, H}, opts),
             g_wprev = new_output({B, H, N}, opts);
  const MemDims md{B, H, N, W, S};
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::address_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    at::parallel_for(0, B, grain_for(H * N * (2 * W + S)), [&](int64_t b0, int64_t b1) {
      std::vector<A> buf(static_cast<size_t>(address_bwd_scratch(md)));
      address_bwd_batches<T, A>(
          grad.const_data_ptr<T>(), memory.const_data_ptr<T>(), key.const_data_ptr<T>(),
          beta.const_data_ptr<T>(), gate.const_data_ptr<T>(), shift.const_data_ptr<T>(),
          gamma.const_data_ptr<T>(), w_prev.const_data_ptr<T>(), g_memory.mutable_data_ptr<T>(),
          g_key.mutable_data_ptr<T>(), g_beta.mutable_data_ptr<T>(), g_gate.mutable_data_ptr<T>(),
          g_shift.mutable_data_ptr<T>(), g_gamma.mutable_data_ptr<T>(),
          g_wprev.mutable_data_ptr<T>(), md, b0, b1, buf.data());
    });
  });
  return {g_memory, g_key, g_beta, g_gate, g_shift, g_gamma, g_wprev};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) {
  m.impl("address_fwd", &address_fwd_cpu);
  m.impl("address_bwd", &address_bwd_cpu);
}

}  // namespace ntm_fast
