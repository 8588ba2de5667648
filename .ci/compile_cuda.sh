#!/usr/bin/env bash
# Compile-only check of every torch-free CUDA source under csrc/ (no GPU needed): each .cu is
# compiled with nvcc -c for sm_80 and sm_90 into a temporary directory; any error fails.
# The torch binding (csrc/cuda/ops_cuda.cpp) needs a CUDA torch and is built by setup.py.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "$NVCC" && -x /usr/local/cuda/bin/nvcc ]]; then NVCC=/usr/local/cuda/bin/nvcc; fi
if [[ -z "$NVCC" ]]; then
  echo "compile_cuda.sh: nvcc not found (set NVCC or put it on PATH)" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mapfile -t sources < <(find csrc -name '*.cu' | sort)
if [[ ${#sources[@]} -eq 0 ]]; then
  echo "compile_cuda.sh: no .cu files under csrc/" >&2
  exit 1
fi
for src in "${sources[@]}"; do
  for arch in 80 90; do
    echo "nvcc -c $src (sm_$arch)"
    "$NVCC" -c -std=c++17 -O3 --expt-relaxed-constexpr -Werror all-warnings \
      -gencode="arch=compute_${arch},code=sm_${arch}" \
      "$src" -o "$tmp/$(basename "$src" .cu)_sm${arch}.o"
  done
done
echo "compile_cuda.sh: ${#sources[@]} CUDA source(s) compiled for sm_80 and sm_90"
