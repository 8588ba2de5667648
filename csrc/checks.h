// Argument checks of the ops, shared by the CPU implementation and the CUDA binding.
// The Python side validates first (ntm_fast.validation); these guard direct torch.ops calls.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "common.h"

namespace ntm_fast {

struct Dims {
  int64_t B, H, N, W, S;
};

inline Dims check_content_address_args(const char* op, const at::Tensor& memory,
                                       const at::Tensor& key, const at::Tensor& beta) {
  check_arg(op, "memory", memory, "(B, N, W)", {-1, -1, -1}, memory, "memory");
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2);
  check_arg(op, "key", key, "(B, H, W)", {B, -1, W}, memory, "memory");
  const int64_t H = key.size(1);
  check_arg(op, "beta", beta, "(B, H)", {B, H}, memory, "memory");
  return {B, H, N, W, 0};
}

inline Dims check_weighting_op(const char* op, const char* name, const at::Tensor& w) {
  check_arg(op, name, w, "(B, H, N)", {-1, -1, -1}, w, name);
  return {w.size(0), w.size(1), w.size(2), 0, 0};
}

inline Dims check_interpolate_args(const char* op, const at::Tensor& w_content,
                                  const at::Tensor& w_prev, const at::Tensor& gate) {
  const Dims d = check_weighting_op(op, "w_content", w_content);
  check_arg(op, "w_prev", w_prev, "(B, H, N)", {d.B, d.H, d.N}, w_content, "w_content");
  check_arg(op, "gate", gate, "(B, H)", {d.B, d.H}, w_content, "w_content");
  return d;
}

inline Dims check_shift_convolve_args(const char* op, const at::Tensor& w,
                                      const at::Tensor& shift) {
  Dims d = check_weighting_op(op, "w", w);
  check_arg(op, "shift", shift, "(B, H, S)", {d.B, d.H, -1}, w, "w");
  check_shift_count(op, shift, d.N);
  d.S = shift.size(2);
  return d;
}

inline Dims check_sharpen_args(const char* op, const at::Tensor& w, const at::Tensor& gamma) {
  const Dims d = check_weighting_op(op, "w", w);
  check_arg(op, "gamma", gamma, "(B, H)", {d.B, d.H}, w, "w");
  return d;
}

inline Dims check_address_args(const char* op, const at::Tensor& memory, const at::Tensor& key,
                        const at::Tensor& beta, const at::Tensor& gate, const at::Tensor& shift,
                        const at::Tensor& gamma, const at::Tensor& w_prev) {
  Dims d = check_content_address_args(op, memory, key, beta);
  check_arg(op, "gate", gate, "(B, H)", {d.B, d.H}, memory, "memory");
  check_arg(op, "shift", shift, "(B, H, S)", {d.B, d.H, -1}, memory, "memory");
  check_shift_count(op, shift, d.N);
  d.S = shift.size(2);
  check_arg(op, "gamma", gamma, "(B, H)", {d.B, d.H}, memory, "memory");
  check_arg(op, "w_prev", w_prev, "(B, H, N)", {d.B, d.H, d.N}, memory, "memory");
  return d;
}

inline Dims check_read_args(const char* op, const at::Tensor& memory, const at::Tensor& w) {
  check_arg(op, "memory", memory, "(B, N, W)", {-1, -1, -1}, memory, "memory");
  const int64_t B = memory.size(0), N = memory.size(1), W = memory.size(2);
  check_arg(op, "w", w, "(B, H, N)", {B, -1, N}, memory, "memory");
  return {B, w.size(1), N, W, 0};
}

inline void check_grad(const char* op, const at::Tensor& grad, c10::IntArrayRef expected,
                const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_VALUE(grad.sizes() == expected, op, ": grad: expected shape ", expected, ", got ",
                    describe(grad));
  TORCH_CHECK_TYPE(grad.scalar_type() == ref.scalar_type(), op, ": grad: expected dtype ",
                   ref.scalar_type(), " (the dtype of ", ref_name, "), got ", describe(grad));
  TORCH_CHECK_VALUE(grad.device() == ref.device(), op, ": grad: expected device ", ref.device(),
                    ", got ", describe(grad));
}

inline Dims check_write_args(const char* op, const at::Tensor& memory, const at::Tensor& w,
                      const at::Tensor& erase, const at::Tensor& add) {
  const Dims d = check_read_args(op, memory, w);
  check_arg(op, "erase", erase, "(B, H, W)", {d.B, d.H, d.W}, memory, "memory");
  check_arg(op, "add", add, "(B, H, W)", {d.B, d.H, d.W}, memory, "memory");
  return d;
}

}  // namespace ntm_fast
