#!/usr/bin/env bash
# Every Triton kernel specialisation the package launches, compiled for sm_80 and sm_90 without a
# GPU, its resources checked, and the resource report regenerated (issue 17).
#
# Launches: the folder $NTM_FAST_TRITON_RECORD written by the test run (.ci/run sets it and
# loads tools/triton_record.py as a pytest plugin), or, when it is unset, a recording run of the
# test suite made here (the interpreter: minutes). Plus the slow tests' and the benchmarks'
# shapes, launched on the meta device (tools/triton_record.py). tools/triton_aot.py binds each
# launch as Triton would on a GPU, compiles every distinct specialisation for each architecture
# in parallel processes and fails on a compile error (naming kernel, specialisation and
# architecture), on any spill in a float32/half kernel and on a launch that cannot fit an
# SM (float64 spills are reported only).
#
# Output in build/gpu-resources/: triton.json, the regenerated gpu-resources.md (with cuda.json
# from .ci/compile_cuda.sh when present; the Triton table from the meta sweep alone, so it is
# the same on every run) and its diff against docs/gpu-resources.md, which fails the run when
# not empty; `bash .ci/triton_aot.sh --write` replaces the committed report, `--no-check`
# skips that comparison (a Triton other than CI's: .ci/gpu_pair_on_cpu.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/gpu-resources
mkdir -p "$out"
start=$SECONDS
records=${NTM_FAST_TRITON_RECORD:-}
if [[ -z "$records" ]]; then
    records=$out/launches
    rm -rf "$records"
    NTM_FAST_TRITON_RECORD=$records python -m pytest -q -p tools.triton_record -p no:cacheprovider
fi
rm -rf "$out/sweep"
PYTEST_PLUGINS= python tools/triton_record.py "$out/sweep"  # its own collection: no plugin
rc=0
python tools/triton_aot.py "$records" "$out/sweep" --arch 80 90 --jobs "$(nproc)" \
    --json "$out/triton.json" || rc=$?
report=(python tools/gpu_report.py --triton "$out/triton.json" --cuda "$out/cuda.json"
    --source sweep)
"${report[@]}" --out "$out/gpu-resources.md"
if [[ "${1:-}" == --write ]]; then
    cp "$out/gpu-resources.md" docs/gpu-resources.md
elif [[ "${1:-}" == --no-check ]]; then  # another Triton than CI's: other register counts
    echo "triton_aot.sh: $out/gpu-resources.md not compared with docs/gpu-resources.md"
else
    # the committed report must be current (it lists only the sweep: the same on every run)
    "${report[@]}" --check docs/gpu-resources.md >"$out/gpu-resources.diff" || rc=1
    head -n 80 "$out/gpu-resources.diff"
fi
echo "triton_aot.sh: $((SECONDS - start)) s, exit $rc"
exit $rc
