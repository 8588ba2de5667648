#!/usr/bin/env bash
# The GPU proof (issues 8, 17 and 19) in stages, each sized for one 10-minute call of the lent GPU
# machine. A fresh machine keeps nothing, so every call starts with `build`:
#
#   bash .ci/gpu_proof.sh build proof        # first call: proves the most, stops at a failure
#   bash .ci/gpu_proof.sh build suite        # the whole suite on CUDA
#   bash .ci/gpu_proof.sh build slow sanitize
#   bash .ci/gpu_proof.sh build bench        # pytest bench/ -> $OUT/bench.json
#
# build: versions; the extension for sm_90; `cuobjdump --list-elf` of it ($OUT/elf.log); then
# asserts that the CUDA kernels were built (ntm_fast._C.built_with_cuda(), an sm_90 ELF), that
# one runs and matches the reference, and that pytest and hypothesis import (the machine has no
# network). A build that fails these stops the run: a CPU-only build would skip every CUDA
# test and go green without running one kernel.
# proof, suite, slow, sanitize: the tests of tests/gpu_tests.py for that stage (what each
# proves: `python3 tests/gpu_tests.py list`). Triton is compiled (NTM_FAST_TRITON_COMPILED=1).
# Each stage's full log goes to $OUT/<stage>.log (./gpu-proof/ when OUT is unset) with its
# wall time; the end of each is printed. Exit status 1 when any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-proof}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NTM_FAST_TRITON_COMPILED=1 HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
status=0

stage() {  # stage NAME COMMAND...: run, log to $OUT/NAME.log, print its end and time
    local name=$1 start=$SECONDS
    shift
    echo "== $name: $*"
    "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: $((SECONDS - start)) s" >>"$OUT/$name.log"
    tail -n 15 "$OUT/$name.log"
    echo "== $name: exit $rc, $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || status=1
    return "$rc"
}

versions() {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c 'import sys, torch, triton; print("python", sys.version.split()[0], "torch",
torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'
    nvcc --version | tail -n 2
}

elf() {  # elf ARCH_LIST: the architectures compiled into the extension, each one required
    local so listing a
    so=$(python3 -c 'import ntm_fast._C as m; print(m.__file__)') || return 1
    listing=$(cuobjdump --list-elf "$so") || return 1
    echo "$listing"
    for a in ${1//;/ }; do
        a=${a%%+*}
        grep -q "sm_${a//./}" <<<"$listing" || { echo "no sm_${a//./} ELF in $so" >&2; return 1; }
    done
}

assert_cuda_build() {
    python3 - <<'EOF'
import hypothesis, pytest  # noqa: F401  (the GPU machine has no network: both must be there)
import torch
from ntm_fast import _C, ops, reference
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
assert _C.built_with_cuda(), "ntm_fast._C was built WITHOUT CUDA kernels (nvcc/CUDA_HOME?)"
m, w = torch.randn(2, 5, 4, device="cuda"), torch.softmax(torch.randn(2, 3, 5, device="cuda"), -1)
out = ops.read(m, w, backend="native")
torch.cuda.synchronize()
torch.testing.assert_close(out, reference.read(m, w))
print("CUDA kernels built and ran: native read on", torch.cuda.get_device_name())
from ntm_fast import native_sequence
assert native_sequence.available(torch.device("cuda")), "sequence_fwd/bwd not registered for CUDA"
print("the whole-sequence op is registered for CUDA")
EOF
}

sanitize() {  # compute-sanitizer on ntm_fast's CUDA kernels only (torch's are not instrumented)
    local filter=(--kernel-name kns=ntm_fast)
    compute-sanitizer --help | grep -q -- '--kernel-name' || filter=(--filter kns=ntm_fast)
    local args
    mapfile -t args < <(python3 tests/gpu_tests.py args sanitize)
    for tool in memcheck racecheck; do
        for a in "${args[@]}"; do
            eval "set -- $a"
            echo "-- $tool: $*"
            compute-sanitizer --tool "$tool" "${filter[@]}" --error-exitcode 1 \
                python3 -m pytest -q -p no:cacheprovider "$@" || return 1
        done
    done
}

for name in "$@"; do
    case $name in
    build)
        stage versions versions
        arch=${TORCH_CUDA_ARCH_LIST:-9.0}
        stage build env TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS="$(nproc)" \
            python3 -m pip install --no-build-isolation --no-deps -e . || exit 1
        stage elf elf "$arch" || exit 1
        stage assert assert_cuda_build || exit 1
        ;;
    proof | suite | slow) stage "$name" python3 tests/gpu_tests.py run "$name" ;;
    sanitize) stage sanitize sanitize ;;
    bench) stage bench python3 -m pytest bench/ -q --benchmark-json="$OUT/bench.json" ;;
    *)
        echo "unknown stage '$name' (expected build, proof, suite, slow, sanitize or bench)" >&2
        exit 2
        ;;
    esac
done
exit $status
