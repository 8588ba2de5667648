"""Where the tests' tensors live: the one place every test that can run on CUDA takes its
device from. tests/test_device_lint.py checks on the CPU that the modules importing from here
make every tensor on a device they name (a CPU tensor next to CUDA ones passes under the
interpreter and fails on the GPU run).

* ``DEVICE``: where the Triton tests run: the CPU under the interpreter (CI; conftest sets
  TRITON_INTERPRET=1), CUDA compiled (NTM_FAST_TRITON_COMPILED=1 on a GPU machine).
* ``DEVICES``: every device this machine has, for FastNTM on each backend
  (``backend_cases``): the CPU, and CUDA when present.
* ``DEVICE_PARAMS``: the CPU and CUDA as pytest params, the CUDA case skipped without a GPU,
  for the native ops' tests (tests/gpu_tests.py lists their CUDA cases for the GPU proof).
* ``OP_BACKENDS``: ``(backend, device)`` params for the op tests of every fast backend, ids
  ``native-cpu``, ``native-cuda`` (skipped without a GPU) and ``triton-cpu`` (interpreter) or
  ``triton-cuda`` (compiled); each test skips, saying why, where its backend cannot run
  (tests/op_checks.py's ``need``); ``NATIVE_BACKENDS`` and ``TRITON_BACKENDS`` are its
  cases of one backend.
"""

from __future__ import annotations

import os

import pytest
import torch

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
CUDA = torch.cuda.is_available()
DEVICE = "cpu" if INTERPRET else "cuda"
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])
DEVICE_PARAMS = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device")),
]

OP_BACKENDS = [
    pytest.param("native", "cpu", id="native-cpu"),
    pytest.param("native", "cuda", id="native-cuda",
                 marks=pytest.mark.skipif(not CUDA, reason="no CUDA device")),
    pytest.param("triton", DEVICE, id=f"triton-{DEVICE}"),
]  # fmt: skip
NATIVE_BACKENDS = [p for p in OP_BACKENDS if p.values[0] == "native"]
TRITON_BACKENDS = [p for p in OP_BACKENDS if p.values[0] == "triton"]


def backend_cases(names: tuple[str, ...] = ("native", "triton")) -> list:
    """``(backend, device)`` params for FastNTM: each fast backend on each of ``DEVICES``,
    skipped where it cannot run (Triton: the CPU only under the interpreter, CUDA only
    compiled; native: where the extension was built for that device)."""
    from ntm_fast import backends

    out = []
    for device in DEVICES:
        for name in names:
            reason = backends.unavailable_reason(name, torch.device(device))
            skip = pytest.mark.skipif(reason is not None, reason=str(reason))
            out.append(pytest.param(name, device, id=f"{name}-{device}", marks=skip))
    return out
