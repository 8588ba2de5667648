"""Benchmark set-up: fixed thread count, machine facts in the JSON, device selection.

Run: ``pytest bench/ --benchmark-json bench/results/RESULTS.json``; CI runs
``pytest bench --benchmark-disable`` once so the benchmarks cannot rot. On the CPU the thread
count is fixed (``NTM_BENCH_THREADS``, default: all cores) and recorded.
"""

from __future__ import annotations

import datetime
import os
import platform

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
