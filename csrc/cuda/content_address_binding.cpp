// Torch binding of the CUDA content_address (content_address.cu) for the CUDA key;
// built only by a CUDA build.
#include "binding.h"

namespace ntm_fast {
namespace {
using namespace cuda_binding;

at::Tensor content_address_fwd_cuda(const at::Tensor& memory_, const at::Tensor& key_,
                                    const at::Tensor& beta_) {
  const char* op = "ntm_fast::content_address_fwd";
  const Dims d = check_content_address_args(op, memory_, key_, beta_);
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto memory = memory_.contiguous(), key = key_.contiguous(), beta = beta_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, memory.options());
  dispatch(memory, [&](auto tv) {
    using T = decltype(tv);
    at::Tensor ws = workspace<T>(cuda::ContentFwdWorkspace{d.N}, d.B, d.H, memory);
    cuda::ContentAddressFwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.memory = cptr<T>(memory);
    p.key = cptr<T>(key);
    p.beta = cptr<T>(beta);
    p.out = mptr<T>(out);
    p.workspace = ws_ptr<T>(ws);
    C10_CUDA_CHECK(cuda::content_address_fwd(p, stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> content_address_bwd_cuda(
    const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& key_,
    const at::Tensor& beta_) {
  const char* op = "ntm_fast::content_address_bwd";
  const Dims d = check_content_address_args(op, memory_, key_, beta_);
  check_grad(op, grad_, {d.B, d.H, d.N}, memory_, "memory");
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), key = key_.contiguous(),
             beta = beta_.contiguous();
  const auto opts = memory.options();
  at::Tensor gM = new_output({d.B, d.N, d.W}, opts), gK = new_output({d.B, d.H, d.W}, opts),
             gB = new_output({d.B, d.H}, opts);
  dispatch(memory, [&](auto tv) {
    using T = decltype(tv);
    at::Tensor ws = workspace<T>(cuda::ContentBwdWorkspace(d.N), d.B, d.H, memory);
    cuda::ContentAddressBwdParams<T> p;
    p.set_sizes(d.B, d.H, d.N, d.W, d.S);
    p.grad = cptr<T>(grad);
    p.memory = cptr<T>(memory);
    p.key = cptr<T>(key);
    p.beta = cptr<T>(beta);
    p.g_memory = mptr<T>(gM);
    p.g_key = mptr<T>(gK);
    p.g_beta = mptr<T>(gB);
    p.workspace = ws_ptr<T>(ws);
    C10_CUDA_CHECK(cuda::content_address_bwd(p, stream()));
  });
  return {gM, gK, gB};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("content_address_fwd", &content_address_fwd_cuda);
  m.impl("content_address_bwd", &content_address_bwd_cuda);
}

}  // namespace ntm_fast
