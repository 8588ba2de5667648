// Torch binding of the CUDA kernels (compiled only in the CUDA build): checks the arguments,
// makes inputs contiguous, allocates outputs (NaN-poisoned in tests) and workspaces, sets the
// device guard and launches on the current stream through the torch-free launchers.
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "../common.h"
#include "launchers.h"

namespace ntm_fast {
namespace {

cuda::DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return cuda::DType::Float32;
    case at::kDouble:
      return cuda::DType::Float64;
    case at::kHalf:
      return cuda::DType::Float16;
    case at::kBFloat16:
      return cuda::DType::BFloat16;
    default:
      TORCH_CHECK_TYPE(false, "ntm_fast: unsupported dtype ", t.scalar_type());
  }
}

void check_cuda(const char* op, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.is_cuda(), op, ": expected CUDA tensors, got ", describe(t));
}

at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

const void* cptr(const at::Tensor& t) { return t.const_data_ptr(); }
void* mptr(at::Tensor& t) { return t.mutable_data_ptr(); }

at::Tensor content_address_fwd_cuda(const at::Tensor& memory_, const at::Tensor& key_,
                                    const at::Tensor& beta_) {
  const char* op = "ntm_fast::content_address_fwd";
  const Dims d = check_content(op, memory_, key_, beta_);
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto memory = memory_.contiguous(), key = key_.contiguous(), beta = beta_.contiguous();
  const auto t = dtype_of(memory);
  at::Tensor out = new_output({d.B, d.H, d.N}, memory.options());
  at::Tensor ws = workspace(cuda::content_fwd_workspace_bytes(t, d.B, d.H, d.N), memory);
  C10_CUDA_CHECK(cuda::content_address_fwd(t, cptr(memory), cptr(key), cptr(beta), mptr(out),
                                           mptr(ws), d.B, d.H, d.N, d.W, stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> content_address_bwd_cuda(
    const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& key_,
    const at::Tensor& beta_) {
  const char* op = "ntm_fast::content_address_bwd";
  const Dims d = check_content(op, memory_, key_, beta_);
  check_grad(op, grad_, {d.B, d.H, d.N}, memory_, "memory");
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), key = key_.contiguous(),
             beta = beta_.contiguous();
  const auto t = dtype_of(memory);
  const auto opts = memory.options();
  at::Tensor gM = new_output({d.B, d.N, d.W}, opts), gK = new_output({d.B, d.H, d.W}, opts),
             gB = new_output({d.B, d.H}, opts);
  at::Tensor ws = workspace(cuda::content_bwd_workspace_bytes(t, d.B, d.H, d.N), memory);
  C10_CUDA_CHECK(cuda::content_address_bwd(t, cptr(grad), cptr(memory), cptr(key), cptr(beta),
                                           mptr(gM), mptr(gK), mptr(gB), mptr(ws), d.B, d.H,
                                           d.N, d.W, stream()));
  return {gM, gK, gB};
}

at::Tensor interpolate_fwd_cuda(const at::Tensor& wc_, const at::Tensor& wp_,
                                const at::Tensor& gate_) {
  const char* op = "ntm_fast::interpolate_fwd";
  const Dims d = check_interpolate_args(op, wc_, wp_, gate_);
  check_cuda(op, wc_);
  const c10::cuda::CUDAGuard guard(wc_.device());
  const auto wc = wc_.contiguous(), wp = wp_.contiguous(), gate = gate_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, wc.options());
  C10_CUDA_CHECK(cuda::interpolate_fwd(dtype_of(wc), cptr(wc), cptr(wp), cptr(gate), mptr(out),
                                       d.B, d.H, d.N, stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_bwd_cuda(const at::Tensor& grad_,
                                                                    const at::Tensor& wc_,
                                                                    const at::Tensor& wp_,
                                                                    const at::Tensor& gate_) {
  const char* op = "ntm_fast::interpolate_bwd";
  const Dims d = check_interpolate_args(op, wc_, wp_, gate_);
  check_grad(op, grad_, {d.B, d.H, d.N}, wc_, "w_content");
  check_cuda(op, wc_);
  const c10::cuda::CUDAGuard guard(wc_.device());
  const auto grad = grad_.contiguous(), wc = wc_.contiguous(), wp = wp_.contiguous(),
             gate = gate_.contiguous();
  const auto opts = wc.options();
  at::Tensor gc = new_output({d.B, d.H, d.N}, opts), gp = new_output({d.B, d.H, d.N}, opts),
             gg = new_output({d.B, d.H}, opts);
  C10_CUDA_CHECK(cuda::interpolate_bwd(dtype_of(wc), cptr(grad), cptr(wc), cptr(wp), cptr(gate),
                                       mptr(gc), mptr(gp), mptr(gg), d.B, d.H, d.N, stream()));
  return {gc, gp, gg};
}

at::Tensor shift_convolve_fwd_cuda(const at::Tensor& w_, const at::Tensor& shift_) {
  const char* op = "ntm_fast::shift_convolve_fwd";
  const Dims d = check_shift_args(op, w_, shift_);
  check_cuda(op, w_);
  const c10::cuda::CUDAGuard guard(w_.device());
  const auto w = w_.contiguous(), shift = shift_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, w.options());
  C10_CUDA_CHECK(cuda::shift_convolve_fwd(dtype_of(w), cptr(w), cptr(shift), mptr(out), d.B, d.H,
                                          d.N, shift.size(2), stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> shift_convolve_bwd_cuda(const at::Tensor& grad_,
                                                           const at::Tensor& w_,
                                                           const at::Tensor& shift_) {
  const char* op = "ntm_fast::shift_convolve_bwd";
  const Dims d = check_shift_args(op, w_, shift_);
  check_grad(op, grad_, {d.B, d.H, d.N}, w_, "w");
  check_cuda(op, w_);
  const c10::cuda::CUDAGuard guard(w_.device());
  const auto grad = grad_.contiguous(), w = w_.contiguous(), shift = shift_.contiguous();
  const int64_t S = shift.size(2);
  at::Tensor gw = new_output({d.B, d.H, d.N}, w.options()),
             gs = new_output({d.B, d.H, S}, w.options());
  C10_CUDA_CHECK(cuda::shift_convolve_bwd(dtype_of(w), cptr(grad), cptr(w), cptr(shift),
                                          mptr(gw), mptr(gs), d.B, d.H, d.N, S, stream()));
  return {gw, gs};
}

at::Tensor sharpen_fwd_cuda(const at::Tensor& w_, const at::Tensor& gamma_) {
  const char* op = "ntm_fast::sharpen_fwd";
  const Dims d = check_sharpen_args(op, w_, gamma_);
  check_cuda(op, w_);
  const c10::cuda::CUDAGuard guard(w_.device());
  const auto w = w_.contiguous(), gamma = gamma_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.N}, w.options());
  C10_CUDA_CHECK(cuda::sharpen_fwd(dtype_of(w), cptr(w), cptr(gamma), mptr(out), d.B, d.H, d.N,
                                   stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> sharpen_bwd_cuda(const at::Tensor& grad_, const at::Tensor& w_,
                                                    const at::Tensor& gamma_) {
  const char* op = "ntm_fast::sharpen_bwd";
  const Dims d = check_sharpen_args(op, w_, gamma_);
  check_grad(op, grad_, {d.B, d.H, d.N}, w_, "w");
  check_cuda(op, w_);
  const c10::cuda::CUDAGuard guard(w_.device());
  const auto grad = grad_.contiguous(), w = w_.contiguous(), gamma = gamma_.contiguous();
  const auto t = dtype_of(w);
  at::Tensor gw = new_output({d.B, d.H, d.N}, w.options()),
             gy = new_output({d.B, d.H}, w.options());
  at::Tensor ws = workspace(cuda::sharpen_bwd_workspace_bytes(t, d.B, d.H, d.N), w);
  C10_CUDA_CHECK(cuda::sharpen_bwd(t, cptr(grad), cptr(w), cptr(gamma), mptr(gw), mptr(gy),
                                   mptr(ws), d.B, d.H, d.N, stream()));
  return {gw, gy};
}

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
  const auto t = dtype_of(memory);
  at::Tensor out = new_output({d.B, d.H, d.N}, memory.options());
  at::Tensor ws = workspace(cuda::address_fwd_workspace_bytes(t, d.B, d.H, d.N), memory);
  C10_CUDA_CHECK(cuda::address_fwd(t, cptr(memory), cptr(key), cptr(beta), cptr(gate),
                                   cptr(shift), cptr(gamma), cptr(w_prev), mptr(out), mptr(ws),
                                   d.B, d.H, d.N, d.W, d.S, stream()));
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
  const auto t = dtype_of(memory);
  const auto opts = memory.options();
  at::Tensor gM = new_output({d.B, d.N, d.W}, opts), gK = new_output({d.B, d.H, d.W}, opts),
             gB = new_output({d.B, d.H}, opts), gG = new_output({d.B, d.H}, opts),
             gS = new_output({d.B, d.H, d.S}, opts), gY = new_output({d.B, d.H}, opts),
             gP = new_output({d.B, d.H, d.N}, opts);
  at::Tensor ws = workspace(cuda::address_bwd_workspace_bytes(t, d.B, d.H, d.N), memory);
  C10_CUDA_CHECK(cuda::address_bwd(t, cptr(grad), cptr(memory), cptr(key), cptr(beta),
                                   cptr(gate), cptr(shift), cptr(gamma), cptr(w_prev), mptr(gM),
                                   mptr(gK), mptr(gB), mptr(gG), mptr(gS), mptr(gY), mptr(gP),
                                   mptr(ws), d.B, d.H, d.N, d.W, d.S, stream()));
  return {gM, gK, gB, gG, gS, gY, gP};
}

at::Tensor read_fwd_cuda(const at::Tensor& memory_, const at::Tensor& w_) {
  const char* op = "ntm_fast::read_fwd";
  const Dims d = check_rw(op, memory_, w_);
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto memory = memory_.contiguous(), w = w_.contiguous();
  at::Tensor out = new_output({d.B, d.H, d.W}, memory.options());
  C10_CUDA_CHECK(cuda::read_fwd(dtype_of(memory), cptr(memory), cptr(w), mptr(out), d.B, d.H,
                                d.N, d.W, stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> read_bwd_cuda(const at::Tensor& grad_,
                                                 const at::Tensor& memory_,
                                                 const at::Tensor& w_) {
  const char* op = "ntm_fast::read_bwd";
  const Dims d = check_rw(op, memory_, w_);
  check_grad(op, grad_, {d.B, d.H, d.W}, memory_, "memory");
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), w = w_.contiguous();
  at::Tensor gM = new_output({d.B, d.N, d.W}, memory.options()),
             gw = new_output({d.B, d.H, d.N}, memory.options());
  C10_CUDA_CHECK(cuda::read_bwd(dtype_of(memory), cptr(grad), cptr(memory), cptr(w), mptr(gM),
                                mptr(gw), d.B, d.H, d.N, d.W, stream()));
  return {gM, gw};
}

at::Tensor write_fwd_cuda(const at::Tensor& memory_, const at::Tensor& w_,
                          const at::Tensor& erase_, const at::Tensor& add_) {
  const char* op = "ntm_fast::write_fwd";
  const Dims d = check_write_args(op, memory_, w_, erase_, add_);
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto memory = memory_.contiguous(), w = w_.contiguous(), erase = erase_.contiguous(),
             add = add_.contiguous();
  at::Tensor out = new_output({d.B, d.N, d.W}, memory.options());
  C10_CUDA_CHECK(cuda::write_fwd(dtype_of(memory), cptr(memory), cptr(w), cptr(erase),
                                 cptr(add), mptr(out), d.B, d.H, d.N, d.W, stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> write_bwd_cuda(
    const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& w_,
    const at::Tensor& erase_, const at::Tensor& add_) {
  const char* op = "ntm_fast::write_bwd";
  const Dims d = check_write_args(op, memory_, w_, erase_, add_);
  check_grad(op, grad_, {d.B, d.N, d.W}, memory_, "memory");
  check_cuda(op, memory_);
  const c10::cuda::CUDAGuard guard(memory_.device());
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), w = w_.contiguous(),
             erase = erase_.contiguous(), add = add_.contiguous();
  const auto opts = memory.options();
  at::Tensor gM = new_output({d.B, d.N, d.W}, opts), gw = new_output({d.B, d.H, d.N}, opts),
             ge = new_output({d.B, d.H, d.W}, opts), ga = new_output({d.B, d.H, d.W}, opts);
  C10_CUDA_CHECK(cuda::write_bwd(dtype_of(memory), cptr(grad), cptr(memory), cptr(w),
                                 cptr(erase), cptr(add), mptr(gM), mptr(gw), mptr(ge), mptr(ga),
                                 d.B, d.H, d.N, d.W, stream()));
  return {gM, gw, ge, ga};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CUDA, m) {
  m.impl("content_address_fwd", &content_address_fwd_cuda);
  m.impl("content_address_bwd", &content_address_bwd_cuda);
  m.impl("interpolate_fwd", &interpolate_fwd_cuda);
  m.impl("interpolate_bwd", &interpolate_bwd_cuda);
  m.impl("shift_convolve_fwd", &shift_convolve_fwd_cuda);
  m.impl("shift_convolve_bwd", &shift_convolve_bwd_cuda);
  m.impl("sharpen_fwd", &sharpen_fwd_cuda);
  m.impl("sharpen_bwd", &sharpen_bwd_cuda);
  m.impl("address_fwd", &address_fwd_cuda);
  m.impl("address_bwd", &address_bwd_cuda);
  m.impl("read_fwd", &read_fwd_cuda);
  m.impl("read_bwd", &read_bwd_cuda);
  m.impl("write_fwd", &write_fwd_cuda);
  m.impl("write_bwd", &write_bwd_cuda);
}

}  // namespace ntm_fast
