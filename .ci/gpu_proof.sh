#!/usr/bin/env bash
# The GPU proof (issue 8) in stages, each sized for one 10-minute call of the lent GPU machine
# (a fresh machine keeps nothing, so every call starts with `build`):
#
#   bash .ci/gpu_proof.sh build tests             # sm_90 build, the whole suite on the GPU
#   bash .ci/gpu_proof.sh build slow sanitize     # GPU-sized sweeps; compute-sanitizer
#   bash .ci/gpu_proof.sh build bench             # pytest bench/ -> $OUT/bench.json
#
# Triton is compiled for the GPU (NTM_FAST_TRITON_COMPILED=1), not interpreted. Each stage's
# full log goes to $OUT/<stage>.log (./gpu-proof/ when OUT is unset); the end of each is
# printed. Exit status 1 when any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-proof}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NTM_FAST_TRITON_COMPILED=1 HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
status=0

stage() {  # stage NAME COMMAND...: run, log to $OUT/NAME.log, print its end
    local name=$1
    shift
    echo "== $name: $*"
    "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 15 "$OUT/$name.log"
    echo "== $name: exit $rc"
    [ "$rc" -eq 0 ] || status=1
}

versions() {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c 'import sys, torch, triton; print("python", sys.version.split()[0], "torch",
torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'
    nvcc --version | tail -n 2
}

for name in "$@"; do
    case $name in
    build)
        stage versions versions
        stage build env TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="$(nproc)" \
            python3 -m pip install --no-build-isolation --no-deps -e .
        ;;
    tests) stage tests python3 -m pytest -q -rs ;;
    slow) stage slow python3 -m pytest -q -m slow ;;
    sanitize)
        # the CUDA cases of the native op tests: every kernel, forward and backward
        for tool in memcheck racecheck; do
            stage "$tool" compute-sanitizer --tool "$tool" --error-exitcode 1 \
                python3 -m pytest -q -p no:cacheprovider tests/test_native_ops.py -k cuda
        done
        ;;
    bench) stage bench python3 -m pytest bench/ -q --benchmark-json="$OUT/bench.json" ;;
    *)
        echo "unknown stage '$name' (expected build, tests, slow, sanitize or bench)" >&2
        exit 2
        ;;
    esac
done
exit $status
