#!/usr/bin/env bash
# The GPU machine's versions on a machine without a GPU (issue 19's preparation): Python 3.12,
# torch 2.11 (its CUDA 13 build) and triton 3.6 in a fresh venv, then, on a clone of this
# checkout, what .ci/run does with its own pair (torch 2.13 CPU, triton 3.9):
#   1. the extension built as the GPU proof builds it (TORCH_CUDA_ARCH_LIST=9.0, CUDA kernels:
#      needs nvcc 13 and the CUDA headers; `ntm_fast._C.built_with_cuda()` must be True);
#   2. the README's test command (Triton under the interpreter; CUDA tests skip), recording
#      every Triton launch; the benchmarks once without timing;
#   3. .ci/compile_cuda.sh, and every recorded Triton specialisation compiled by triton 3.6 for
#      sm_80 and sm_90 (.ci/triton_aot.sh --no-check: its report, made by another Triton
#      than CI's, lands in WORKDIR/logs instead of being compared with the committed one).
# Not part of .ci/run: it downloads ~3 GB (the CUDA torch wheel and its nvidia-* wheels) and
# took 21 min on 2 cores (pip's cache warm; session 39; docs/native-build.md).
# Usage: bash .ci/gpu_pair_on_cpu.sh [WORKDIR] (default /tmp/ntm-gpu-pair; PYTHON312=path picks
# the interpreter, default python3.12); logs in WORKDIR/logs, one per step, with its time.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/ntm-gpu-pair}
python=${PYTHON312:-python3.12}
mkdir -p "$work/logs"
status=0

step() {  # step NAME COMMAND...: run in the clone, log to logs/NAME.log, print its end
    local name=$1 start=$SECONDS
    shift
    echo "== $name: $*"
    (cd "$work/src" && "$@") >"$work/logs/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc, $((SECONDS - start)) s" | tee -a "$work/logs/$name.log"
    [ "$rc" -eq 0 ] || { tail -n 15 "$work/logs/$name.log"; status=1; }
    return "$rc"
}

if [ ! -x "$work/venv/bin/python" ]; then
    "$python" -m venv "$work/venv" || exit 1
fi
export PATH="$work/venv/bin:$PATH"
rm -rf "$work/src" && git clone -q "$repo" "$work/src" || exit 1
step install python -m pip install -q torch==2.11.0 triton==3.6.0 pytest pytest-benchmark \
    hypothesis ninja tqdm matplotlib numpy || exit 1
step versions python -c 'import sys, numpy, torch, triton; print("python", sys.version.split()[0],
"torch", torch.__version__, "triton", triton.__version__, "numpy", numpy.__version__)'
step build env TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS="$(nproc)" \
    python -m pip install -v --no-build-isolation --no-deps -e . || exit 1
step built_with_cuda python -c 'from ntm_fast import _C; assert _C.built_with_cuda(), "no CUDA"'
records="$work/src/build/gpu-resources/launches"
step suite env NTM_FAST_TRITON_RECORD="$records" PYTEST_PLUGINS=tools.triton_record \
    python -m pytest -p no:cacheprovider
step bench python -m pytest bench --benchmark-disable -q -p no:cacheprovider
step compile_cuda bash .ci/compile_cuda.sh
step triton_aot env NTM_FAST_TRITON_RECORD="$records" bash .ci/triton_aot.sh --no-check
cp "$work/src/build/gpu-resources/gpu-resources.md" "$work/logs/" 2>/dev/null
exit $status
