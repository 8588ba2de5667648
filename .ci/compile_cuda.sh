#!/usr/bin/env bash
# Compile-only check of the CUDA sources (no GPU needed) with the flags torch's build gives nvcc
# for setup.py's extension (torch's COMMON_NVCC_FLAGS: -D__CUDA_NO_HALF_OPERATORS__,
# -D__CUDA_NO_HALF_CONVERSIONS__, -D__CUDA_NO_BFLOAT16_CONVERSIONS__,
# -D__CUDA_NO_HALF2_OPERATORS__, --expt-relaxed-constexpr; -fPIC; setup.py's own nvcc arguments
# and macros; -std=c++17), for sm_80 and sm_90, warnings as errors. The sources are the .cu
# files of setup.py's CUDA extension plus any other .cu under csrc/; the torch bindings
# (csrc/cuda/*.cpp) need a CUDA torch to build and get a host syntax check (c++ -fsyntax-only
# against this torch's headers and the CUDA toolkit's).
# ptxas' report (-Xptxas -v) gives each kernel's registers, spills and shared memory:
# build/gpu-resources/cuda.json (docs/gpu-resources.md). Fails on a compile error, on spills
# in a kernel whose element type is not double, and on a launch that cannot fit an SM.
# Print the flags: python tools/cuda_resources.py --print-flags
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/gpu-resources
python tools/cuda_resources.py --arch 80 90 --json build/gpu-resources/cuda.json
