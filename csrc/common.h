// Torch-side helpers shared by the CPU implementation and the CUDA binding (host code only):
// argument checks with readable messages and output allocation with optional NaN poisoning.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <initializer_list>
#include <string>

namespace ntm_fast {

// NaN poisoning of freshly allocated outputs (tests): driven from Python by
// ntm_fast._C.set_poison, mirroring ntm_fast._buffers.poison_enabled().
bool poison_enabled();
void set_poison(bool enabled);

// A new uninitialised output; filled with NaN when poisoning is on.
at::Tensor new_output(c10::IntArrayRef sizes, const c10::TensorOptions& options);

// Checks that `t` is a floating tensor of rank sizes.size() whose sizes match `sizes`
// (-1 = any size >= 1), with the dtype and device of `ref` (named `ref_name`).
// `spec` names the dims, e.g. "(B, N, W)"; `op` prefixes the message.
void check_arg(const char* op, const char* name, const at::Tensor& t, const char* spec,
               std::initializer_list<int64_t> sizes, const at::Tensor& ref, const char* ref_name);

// Human-readable "shape [..], dtype .., device .." of a tensor.
std::string describe(const at::Tensor& t);

// Number of shift offsets k for S = 2k+1, checking that S is odd and 1 <= S <= N.
int64_t check_shift_count(const char* op, const at::Tensor& shift, int64_t N);

}  // namespace ntm_fast
