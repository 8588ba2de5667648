// CPU binding of write (eqs. 3-4): csrc/cpu/memory_kernels.h over batches.
#include "op_common.h"

namespace ntm_fast {
namespace {
using namespace cpu;

at::Tensor write_fwd_cpu(const at::Tensor& memory_, const at::Tensor& w_, const at::Tensor& erase_,
                         const at::Tensor& add_) {
  const Dims d = check_write_args("ntm_fast::write_fwd", memory_, w_, erase_, add_);
  const auto memory = memory_.contiguous(), w = w_.contiguous(), erase = erase_.contiguous(),
             add = add_.contiguous();
  at::Tensor out = new_output({d.B, d.N, d.W}, memory.options());
  const MemDims md{d.B, d.H, d.N, d.W, 1};
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::write_fwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    at::parallel_for(0, d.B * d.N, grain_for(2 * d.H * d.W), [&](int64_t i0, int64_t i1) {
      std::vector<A> buf(static_cast<size_t>(write_fwd_scratch(md)));
      write_fwd_rows<T, A>(memory.const_data_ptr<T>(), w.const_data_ptr<T>(),
                           erase.const_data_ptr<T>(), add.const_data_ptr<T>(),
                           out.mutable_data_ptr<T>(), md, i0, i1, buf.data());
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> write_bwd_cpu(
    const at::Tensor& grad_, const at::Tensor& memory_, const at::Tensor& w_,
    const at::Tensor& erase_, const at::Tensor& add_) {
  const char* op = "ntm_fast::write_bwd";
  const Dims d = check_write_args(op, memory_, w_, erase_, add_);
  check_grad(op, grad_, {d.B, d.N, d.W}, memory_, "memory");
  const auto grad = grad_.contiguous(), memory = memory_.contiguous(), w = w_.contiguous(),
             erase = erase_.contiguous(), add = add_.contiguous();
  const auto opts = memory.options();
  at::Tensor g_memory = new_output({d.B, d.N, d.W}, opts), g_w = new_output({d.B, d.H, d.N}, opts),
             g_erase = new_output({d.B, d.H, d.W}, opts), g_add = new_output({d.B, d.H, d.W}, opts);
  const MemDims md{d.B, d.H, d.N, d.W, 1};
  NTM_DISPATCH(memory.scalar_type(), "ntm_fast::write_bwd", [&] {
    using T = scalar_t;
    using A = at::opmath_type<T>;
    at::parallel_for(0, d.B, grain_for(4 * d.H * d.N * d.W), [&](int64_t b0, int64_t b1) {
      std::vector<A> buf(static_cast<size_t>(write_bwd_scratch(md)));
      write_bwd_batches<T, A>(grad.const_data_ptr<T>(), memory.const_data_ptr<T>(),
                              w.const_data_ptr<T>(), erase.const_data_ptr<T>(),
                              add.const_data_ptr<T>(), g_memory.mutable_data_ptr<T>(),
                              g_w.mutable_data_ptr<T>(), g_erase.mutable_data_ptr<T>(),
                              g_add.mutable_data_ptr<T>(), md, b0, b1, buf.data());
    });
  });
  return {g_memory, g_w, g_erase, g_add};
}

}  // namespace

TORCH_LIBRARY_IMPL(ntm_fast, CPU, m) {
  m.impl("write_fwd", &write_fwd_cpu);
  m.impl("write_bwd", &write_bwd_cpu);
}

}  // namespace ntm_fast
