"""The tests that prove something only on a GPU, in one place: what each proves and the stage
of ``.ci/gpu_proof.sh`` that runs it. tests/test_gpu_registry.py checks on the CPU that every
test that skips without CUDA, and every module that runs compiled Triton on CUDA, is here.

Stages (each one call of the GPU machine, after ``build``; ``proof`` first, stopping at the
first failure, because it proves the most):

* ``proof``: the native CUDA kernels and FastNTM on CUDA against the reference, then the
  compiled Triton kernels. Triton modules run in parallel processes, one per op (each process
  compiles its own kernels; the compiles, not the GPU, take the time).
* ``suite``: the whole suite on the CUDA machine, compiled Triton.
* ``slow``: the ``-m slow`` sweeps (GPU-sized shapes).
* ``sanitize``: the native CUDA op tests under compute-sanitizer, filtered to ntm_fast's kernels.

Usage: ``python3 tests/gpu_tests.py run STAGE`` (runs it), ``... list`` (this table),
``... args STAGE`` (the pytest arguments, one entry per line, shell-quoted).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

STAGES = ("proof", "suite", "slow", "sanitize")
OPS = ("content_address", "interpolate", "shift_convolve", "sharpen", "address", "read", "write")


@dataclass(frozen=True)
class GpuTest:
    stage: str
    path: str  #: a test file, folder or node id
    proves: str
    keyword: str = ""  #: ``-k`` (a word of the node ids)
    marker: str = ""  #: ``-m``
    shard: bool = False  #: run in parallel processes, one per op

    def pytest_args(self) -> list[str]:
        args = [self.path]
        if self.keyword:
            args += ["-k", self.keyword]
        if self.marker:
            args += ["-m", self.marker]
        return args


GPU_TESTS = [
    GpuTest("proof", "tests/ops/test_backend_ops.py", keyword="native-cuda",
            proves="every native CUDA kernel, forward and backward, every dtype, matches the "
                   "reference (NaN-poisoned outputs: an unwritten element fails); float64 "
                   "gradcheck; deterministic backwards"),
    GpuTest("proof", "tests/ops/test_backend_registration.py", shard=True,
            proves="the extension was built with CUDA and registers every op for the CUDA "
                   "dispatch key; opcheck (the table's fakes and autograd) and torch.compile "
                   "on CUDA, native and compiled Triton"),
    GpuTest("proof", "tests/ops/test_backend_validation.py",
            proves="the native CUDA ops' own argument checks, and every backend's messages on "
                   "CUDA tensors equal the reference's"),
    GpuTest("proof", "tests/model/test_native_sequence_cuda.py",
            proves="the CUDA whole-sequence op (FastNTM's native path on CUDA) matches "
                   "ReferenceNTM, outputs and all gradients, over the CPU op's hypothesis "
                   "configurations (float32, float64); float64 gradcheck; forward and backward "
                   "captured in one CUDA graph replay the eager results; lengths"),
    GpuTest("proof", "tests/model/test_history_output.py", keyword="cuda",
            proves="the CUDA whole-sequence op's weighting, memory and head-parameter "
                   "histories (history=True) and their gradients match ReferenceNTM (float32, "
                   "float64)"),
    GpuTest("proof", "tests/model/test_fast_ntm.py::test_training_step_matches_reference_on_cuda",
            proves="FastNTM trains like ReferenceNTM on CUDA (120 steps, B 1 and 64) with the "
                   "native and the Triton backend"),
    GpuTest("proof", "tests/model/test_fast_ntm.py::test_cuda_graph_path_matches_eager",
            proves="the CUDA-graph path of FastNTM equals its eager path"),
    GpuTest("proof", "tests/ops/test_backend_numerics.py", shard=True,
            proves="edge numerics on native CUDA and compiled Triton: zero norms, β 1e4, γ 50, "
                   "sharpening underflow, full erases, the Triton backward's narrower tile"),
    GpuTest("proof", "tests/ops/test_backend_extremes.py", shard=True,
            proves="saturated half-precision gradients (native CUDA), hypothesis edge values "
                   "of the fused addressing (compiled Triton)"),
    GpuTest("proof", "tests/ops/test_float32_edge.py",
            proves="the float32 edge (scale-safe norms): native CUDA and compiled Triton give "
                   "the float64 answer for memory/key entries 1e-30..1e37 and subnormal "
                   "sharpening rows, forward and backward, FastNTM with extreme memory"),
    GpuTest("proof", "tests/ops/test_backend_ops.py", keyword="triton", shard=True,
            proves="every compiled Triton op, forward and backward, matches the reference: "
                   "shapes, dtypes, non-contiguous inputs, the tiled path, random shapes and "
                   "tiles, gradcheck, determinism"),
    GpuTest("suite", "tests",
            proves="the whole suite passes on a CUDA machine with compiled Triton"),
    GpuTest("slow", "tests", marker="slow",
            proves="GPU-sized sweeps: every op at N up to 65536 (Triton: BN = 1024, the tiled "
                   "forward), the robustness sweeps"),
    GpuTest("sanitize", "tests/ops/test_backend_ops.py", keyword="native-cuda",
            proves="no out-of-bounds access (memcheck) and no shared-memory race (racecheck) "
                   "in the native CUDA kernels"),
    GpuTest("sanitize", "tests/ops/test_backend_numerics.py", keyword="native-cuda",
            proves="the same at the edge values (zero norms, β 1e4, γ 50, underflow)"),
    GpuTest("sanitize", "tests/model/test_native_sequence_cuda.py", keyword="lengths",
            proves="no out-of-bounds access or race in the CUDA whole-sequence op's kernels "
                   "and drivers (LSTM and feedforward, lengths, saving on and off)"),
]  # fmt: skip


def entries(stage: str) -> list[GpuTest]:
    if stage not in STAGES:
        raise SystemExit(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    return [t for t in GPU_TESTS if t.stage == stage]


def op_of(node_id: str) -> str:
    """The op a test is parametrised with (``misc`` when none)."""
    params = re.split(r"[\[\]\-]", node_id.split("::")[-1])
    return next((op for op in OPS if op in params), "misc")


def shards(test: GpuTest) -> dict[str, list[str]]:
    """The node ids of ``test``, grouped by op."""
    marker = [] if test.marker else ["-m", "not slow"]
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "--collect-only", "-q", *marker]
    cmd += test.pytest_args()  # addopts reset: its -q would print counts instead of node ids
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = defaultdict(list)
    for line in out.splitlines():
        if "::" in line:
            groups[op_of(line.strip())].append(line.strip())
    return dict(groups)


def _pytest(args: list[str], stop: bool) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    cmd += ["-x"] if stop else []
    print("$", shlex.join(cmd + args[:6]) + (" ..." if len(args) > 6 else ""), flush=True)
    return subprocess.run(cmd + args).returncode


def run(stage: str, jobs: int) -> int:
    stop = stage == "proof"
    status = 0
    for test in entries(stage):
        if test.shard:
            groups = shards(test)
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                codes = list(pool.map(lambda ids: _pytest(ids, stop), groups.values()))
            rc = max(codes, default=0)
        else:
            rc = _pytest(test.pytest_args(), stop)
        if rc not in (0, 5):  # 5: nothing collected (e.g. no slow test in a file)
            status = 1
            if stop:
                break
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["run", "list", "args"])
    ap.add_argument("stage", nargs="?")
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    if a.command == "list":
        for t in GPU_TESTS:
            print(f"{t.stage:9s} {shlex.join(t.pytest_args())}\n          {t.proves}")
        return 0
    if a.command == "args":
        for t in entries(a.stage):
            print(shlex.join(t.pytest_args()))
        return 0
    return run(a.stage, a.jobs)


if __name__ == "__main__":
    sys.exit(main())
