"""Inputs, byte counts and backend runners shared by the benchmarks (one home for each)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ntm_fast import backends, reference

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


def address_inputs(B, H, N, W, S, *, device, dtype=torch.float32, seed=0, grad=False):
    """Valid inputs for ``address``: β > 0, g in (0,1), γ >= 1, shift and w_prev normalised."""
    g = torch.Generator(device="cpu").manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    tensors = [
        r(B, N, W),
        r(B, H, W),
        torch.nn.functional.softplus(r(B, H)) * 5,
        torch.sigmoid(r(B, H)),
        torch.softmax(r(B, H, S), -1),
        1 + torch.nn.functional.softplus(r(B, H)),
        torch.softmax(r(B, H, N), -1),
    ]
    return [t.to(device=device, dtype=dtype).requires_grad_(grad) for t in tensors]


def op_inputs(op: str, B, H, N, W, S, *, device, dtype=torch.float32, seed=0, grad=False):
    """Inputs for any of the seven ops, derived from the address inputs."""
    m, k, beta, gate, shift, gamma, wp = address_inputs(
        B, H, N, W, S, device=device, dtype=dtype, seed=seed
    )
    erase, add = torch.sigmoid(k.detach()), torch.tanh(k.detach())
    args = {
        "address": (m, k, beta, gate, shift, gamma, wp),
        "content_address": (m, k, beta),
        "interpolate": (wp, wp.flip(-1), gate),
        "shift_convolve": (wp, shift),
        "sharpen": (wp, gamma),
        "read": (m, wp),
        "write": (m, wp, erase, add),
    }[op]
    return [a.detach().clone().requires_grad_(grad) for a in args]


def op_bytes(op: str, B, H, N, W, S, element_size: int = 4) -> int:
    """Bytes an ideal forward kernel moves: every input read once, the output written once."""
    BN, BH = B * N, B * H
    counts = {
        "address": BN * W + BH * (W + 3 + S) + 2 * BH * N,
        "content_address": BN * W + BH * (W + 1) + BH * N,
        "interpolate": 3 * BH * N + BH,
        "shift_convolve": 2 * BH * N + BH * S,
        "sharpen": 2 * BH * N + BH,
        "read": BN * W + BH * N + BH * W,
        "write": 2 * BN * W + BH * N + 2 * BH * W,
    }
    return counts[op] * element_size


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
