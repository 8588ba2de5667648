"""Benchmark set-up: fixed thread count, machine facts in the JSON, device selection, and the
smoke selection.

Run: ``pytest bench/ --benchmark-json bench/results/RESULTS.json``; CI runs
``pytest bench --benchmark-disable -q`` once so the benchmarks cannot rot. On the CPU the
thread count is fixed (``NTM_BENCH_THREADS``, default: all cores) and recorded.

Smoke selection: with ``--benchmark-disable`` nothing is timed, so running every size of every
sweep only repeats the same code paths (the whole set ran for over 20 minutes on a busy 2-core
CPU; the other models' configurations are tested in tests/). Then only the smallest
configuration runs: every op, pass and non-compiled backend at the copy task's batch 1,
every model variant (the compiled reference included) and mode on the copy task at batch 1,
and the main job's default recipe on both paths; the rest is deselected (counted in pytest's
summary line). ``NTM_BENCH_SMOKE_ALL=1`` runs every case.
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import pytest
import torch

THREADS = int(os.environ.get("NTM_BENCH_THREADS", os.cpu_count() or 1))
torch.set_num_threads(THREADS)

DEVICES = ["cpu", "cuda"]


def pytest_benchmark_update_machine_info(config, machine_info):
    info = {
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    machine_info["ntm_fast"] = info


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    dev = torch.device(request.param)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    return dev


@pytest.fixture(scope="session")
def copy_bandwidth_cache() -> dict:
    return {}


def _smoke_case(item: pytest.Item) -> bool:
    """Whether ``item`` is in the smoke selection (see the module docstring)."""
    if Path(item.path).parent != Path(__file__).parent:
        return True  # not a benchmark (e.g. `pytest tests bench`)
    params = getattr(item, "callspec", None)
    params = params.params if params is not None else {}
    name = item.originalname if isinstance(item, pytest.Function) else item.name
    if name == "test_op":
        from .test_ops import COPY

        return params["cfg"] == COPY[0] and params["backend"] != "reference-compiled"
    if name == "test_model":
        from .models import PAPER
        from .test_model import CPU_BATCHES

        task, B, T = params["task"], params["B"], params["T"]
        return task == "copy" and B == min(CPU_BATCHES[task]) and T == PAPER[task][1]
    if name == "test_main_job_step":
        return params["recipe"] == "default"
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("benchmark_disable", default=False):
        return
    if os.environ.get("NTM_BENCH_SMOKE_ALL") == "1":
        return
    keep = [item for item in items if _smoke_case(item)]
    dropped = [item for item in items if not _smoke_case(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
