"""CI's benchmark smoke run (``pytest bench --benchmark-disable -q``) stays short: it selects
the smallest configuration of every benchmark (each op, pass, backend and model variant once)
and deselects the sweeps, which ran for over 20 minutes on a busy 2-core machine (issue 16)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_selection_covers_every_path_once():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "bench", "--benchmark-disable", "--co", "-q",
         "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    cpu = [i for i in ids if "[cpu-" in i]
    assert len(cpu) <= 60, f"{len(cpu)} CPU benchmarks selected for the smoke run"
    assert re.search(r"\d+ deselected", proc.stdout), proc.stdout[-500:]
    sys.path.insert(0, str(ROOT))
    try:
        from bench.models import VARIANTS
        from bench.test_ops import OPS
    finally:
        sys.path.remove(str(ROOT))
    for op in OPS:
        for backend in ("reference", "native"):
            for direction in ("fwd", "fwd+bwd"):
                assert any(f"[cpu-{op}-{backend}-{direction}-" in i for i in cpu), (op, backend)
    for variant in VARIANTS:
        assert any(f"[cpu-{variant}-train-" in i for i in cpu), variant
