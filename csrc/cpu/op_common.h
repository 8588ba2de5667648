// What every CPU op binding includes: torch headers, the shared argument checks and output
// helpers, the CPU kernels, and the dtype dispatch (float16, bfloat16, float32, float64).
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "../checks.h"
#include "../common.h"
#include "memory_kernels.h"

#define NTM_DISPATCH(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)
