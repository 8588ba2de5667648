"""Inputs, byte counts and backend runners shared by the benchmarks (one home for each)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ntm_fast import backends, reference
from ntm_fast.op_table import ARG_SHAPES, OPS, make_inputs

BACKENDS = ("reference", "reference-compiled", "triton", "native")


def skip_reason(backend: str, device: torch.device) -> str | None:
    """Why ``backend`` cannot be benchmarked on ``device`` (None when it can)."""
    if device.type == "cuda" and not torch.cuda.is_available():
        return "no CUDA device on this machine"
    if backend == "reference-compiled":
        return None
    if backend == "triton" and device.type == "cpu":
        return "Triton needs a CUDA device (the CPU interpreter is a test mode, not a speed path)"
    return backends.unavailable_reason(backend, device)


_compiled: dict[str, Callable] = {}


def op_function(op: str, backend: str, device: torch.device) -> Callable:
    """The op ``op`` of ``backend``; ``reference-compiled`` is the reference under torch.compile."""
    if backend == "reference-compiled":
        if op not in _compiled:
            _compiled[op] = torch.compile(getattr(reference, op), dynamic=False)
        return _compiled[op]
    return getattr(backends.get(backend, device), op)


def op_inputs(op: str, B, H, N, W, S, *, device, dtype=torch.float32, seed=0, grad=False):
    """Valid inputs for ``op`` from the library's input factory (:mod:`ntm_fast.op_table`)."""
    gen = torch.Generator().manual_seed(seed)
    args = make_inputs(op, B, H, N, W, S, dtype, device, gen, beta=(0.0, 10.0), gamma=(1.0, 3.0))
    return [a.requires_grad_(grad) for a in args]


def op_bytes(op: str, B, H, N, W, S, element_size: int = 4) -> int:
    """Bytes an ideal forward kernel moves: every input read once, the output written once."""
    size = dict(B=B, H=H, N=N, W=W, S=S)
    shapes = [ARG_SHAPES[a] for a in OPS[op].args] + [OPS[op].out]
    return sum(math.prod(size[c] for c in shape) for shape in shapes) * element_size


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 28) -> float:
    """Measured device-to-device copy bandwidth in bytes/s (read + write counted), median of 5."""
    n = nbytes // 4
    src = torch.empty(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(5):
        sync(device)
        t0 = _now()
        dst.copy_(src)
        sync(device)
        times.append(_now() - t0)
    return 2 * n * 4 / sorted(times)[len(times) // 2]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _now() -> float:
    return time.perf_counter()


def geometric(lo: int, hi: int, factor: int = 4) -> list[int]:
    """lo, lo*factor, ... up to hi (hi included)."""
    out, v = [], lo
    while v < hi:
        out.append(v)
        v *= factor
    return [*out, hi] if not out or out[-1] != hi else out
