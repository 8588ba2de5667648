// Torch binding of the CUDA address (address.cu) for the CUDA key;
// built only by a CUDA build.
#include "binding.h"

namespace ntm_fast {
namespace {
using namespace cuda_binding;

at::Tensor address_fwd_cuda(const at::Tensor& memory_, const at::Tensor& key_,
                            const at::Tensor& beta_, const at::Tensor& gate_,
                            const at::Tensor& shift_, const at::Tensor& gamma_,
                            const at::Tensor& w_prev_) {
  const char* op = "ntm_fast::address_fwd";
  const Dims d = check_address_args(op, memory_, key_, beta_, gate_, shift_, gamma_, w_prev_);
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto memory = memory_.contiguous(), key = key_.contiguous(), beta = beta_.contiguous(),
             gate = gate_.contiguous(), shift = shift_.contiguous(), gamma = gamma_.contiguous(),
             w_prev = w_prev_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, memory.options());
  dispatch(memory, [&](auto tv) {
    using T = decltype(tv);
    at::Tensor ws = workspace<T>(cuda::AddressFwdWorkspace{d.N}, d.B, d.H, memory);
    cuda::AddressFwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.memory = cptr<T>(memory);
    p.key = cptr<T>(key);
    p.beta = cptr<T>(beta);
    p.gate = cptr<T>(gate);
    p.shift = cptr<T>(shift);
    p.gamma = cptr<T>(gamma);
    p.w_prev = cptr<T>(w_prev);
    p.out = mptr<T>(out);
    p.workspace = ws_ptr<T>(ws);
    C10_CUDA_CHECK(cuda::address_fwd(p, stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
address_bwd_cuda(const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& key_,
                 const at::Tensor& beta_, const at::Tensor& gate_, const at::Tensor& shift_,
                 const at::Tensor& gamma_, const at::Tensor& w_prev_) {
  const char* op = "ntm_fast::address_bwd";
  const Dims d = check_address_args(op, memory_, key_, beta_, gate_, shift_, gamma_, w_prev_);
  check_grad(op, grad_, {d.B, d.H, d.N}, memory_, "memory");
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), key = key_.contiguous(),
             beta = beta_.contiguous(), gate = gate_.contiguous(), shift = shift_.contiguous(),
             gamma = gamma_.contiguous(), w_prev = w_prev_.contiguous();
  const auto opts = memory.options();
  at::Tensor gM = new_output({d.B, d.N, d.W}, opts), gK = new_output({d.B, d.H, d.W}, opts),
             gB = new_output({d.B, d.H}, opts), gG = new_output({d.B, d.H}, opts),
             gS = new_output({d.B, d.H, d.S}, opts), gY = new_output({d.B, d.H}, opts),
             gP = new_output({d.B, d.H, d.N}, opts);
  dispatch(memory, [&](auto tv) {
    using T = decltype(tv);
    at::Tensor ws = workspace<T>(cuda::AddressBwdWorkspace(d.N), d.B, d.H, memory);
    cuda::AddressBwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.grad = cptr<T>(grad);
    p.memory = cptr<T>(memory);
    p.key = cptr<T>(key);
    p.beta = cptr<T>(beta);
    p.gate = cptr<T>(gate);
    p.shift = cptr<T>(shift);
    p.gamma = cptr<T>(gamma);
    p.w_prev = cptr<T>(w_prev);
    p.g_memory = mptr<T>(gM);
    p.g_key = mptr<T>(gK);
    p.g_beta = mptr<T>(gB);
    p.g_gate = mptr<T>(gG);
    p.g_shift = mptr<T>(gS);
    p.g_gamma = mptr<T>(gY);
    p.g_w_prev = mptr<T>(gP);
    p.workspace = ws_ptr<T>(ws);
    C10_CUDA_CHECK(cuda::address_bwd(p, stream()));
  });
  return {gM, gK, gB, gG, gS, gY, gP};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("address_fwd", &address_fwd_cuda);
  m.impl("address_bwd", &address_bwd_cuda);
}

}  // namespace ntm_fast
