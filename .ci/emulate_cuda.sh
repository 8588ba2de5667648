#!/usr/bin/env bash
# The CUDA whole-sequence op without a GPU: its drivers, torch binding and step kernels
# (csrc/cuda/sequence_*) compiled for the CPU by tools/cuda_emulation/emulation.py (launches run by
# one thread, the memory launchers as the ntm_fast CPU ops) and checked against the CPU op over
# hypothesis configurations (tools/cuda_emulation/test_sequence.py). Needs the CPU extension
# built (pip install --no-build-isolation -e .) and a C++ compiler; no nvcc, no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -q -p no:cacheprovider tools/cuda_emulation/test_sequence.py "$@"
