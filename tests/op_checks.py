"""Shared by the op tests (tests/ops/): a fast backend's op against the reference, forward and
backward, on inputs from the library's one input factory (:func:`ntm_fast.op_table.make_inputs`).

Backends are the params ``OP_BACKENDS`` of tests/devices.py: ``(backend, device)``; every test
calls :func:`need` first, which skips with the reason the backend cannot run there (a missing
native CPU build fails instead, unless NTM_FAST_NO_NATIVE=1 says it was skipped on purpose).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import pytest
import torch
from tolerances import OP_ARGS, assert_close_allowing, cosine_allowance, forward_tol, grad_tol

from ntm_fast import backends
from ntm_fast import reference as R
from ntm_fast.op_table import make_inputs

NO_NATIVE = os.environ.get("NTM_FAST_NO_NATIVE") == "1"
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def need(backend: str, device: str) -> None:
    """Skip (saying why) where ``backend`` cannot run on ``device``."""
    if backend == "triton":
        pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    reason = backends.unavailable_reason(backend, torch.device(device))
    if reason is not None:
        if backend == "native" and device == "cpu" and not NO_NATIVE:
            pytest.fail(f"native CPU backend unavailable: {reason}")
        pytest.skip(reason)


def op_fn(backend: str, op: str) -> Callable[..., torch.Tensor]:
    return getattr(backends.module(backend), op)


def noncontig(t: torch.Tensor) -> torch.Tensor:
    """The same values as a strided view (last stride 2) of a larger buffer."""
    buf = torch.zeros((*t.shape, 2), dtype=t.dtype, device=t.device)
    buf[..., 0] = t
    return buf[..., 0]


def inputs(
    op: str,
    B: int,
    H: int,
    N: int,
    W: int,
    S: int,
    dtype: torch.dtype,
    device: str,
    *,
    seed: int = 0,
    contiguous: bool = True,
    **ranges: tuple[float, float],
) -> tuple[torch.Tensor, ...]:
    """Valid inputs for ``op`` (op_table.make_inputs, seeded), optionally non-contiguous."""
    gen = torch.Generator().manual_seed(seed)
    args = make_inputs(op, B, H, N, W, S, dtype, device, gen, **ranges)
    return args if contiguous else tuple(noncontig(a) for a in args)


def check_against_reference(
    backend: str, op: str, args: Sequence[torch.Tensor], *, backward: bool = True
) -> None:
    """``backend``'s forward (and backward for a random upstream gradient) against the
    reference: same dtype, shape and device, finite, within tests/tolerances.py."""
    b_in = [a.detach().clone().requires_grad_(backward) for a in args]
    r_in = [a.detach().clone().requires_grad_(backward) for a in args]
    out = op_fn(backend, op)(*b_in)
    ref = getattr(R, op)(*r_in)
    assert out.dtype == ref.dtype and out.shape == ref.shape and out.device == ref.device
    assert torch.isfinite(out).all(), f"{backend} {op}: non-finite output"
    tol = forward_tol(ref.dtype)
    assert_close_allowing(out, ref, tol["atol"], tol["rtol"], f"{backend} {op} forward")
    if not backward:
        return
    gen = torch.Generator().manual_seed(1)
    grad_out = torch.randn(ref.shape, dtype=torch.float64, generator=gen).to(ref)
    grads = torch.autograd.grad(out, b_in, grad_out)
    ref_grads = torch.autograd.grad(ref, r_in, grad_out)
    for i, (g, rg) in enumerate(zip(grads, ref_grads, strict=True)):
        name = OP_ARGS[op][i]
        assert g.dtype == rg.dtype and g.shape == rg.shape, f"{backend} {op} d/d{name}"
        assert torch.isfinite(g).all(), f"{backend} {op}: non-finite gradient of input {i}"
        tol, extra = grad_tol(rg.dtype), cosine_allowance(op, name, args, grad_out)
        assert_close_allowing(g, rg, tol["atol"], tol["rtol"], f"{backend} {op} d/d{name}", extra)


def finite_fwd_bwd(
    backend: str, op: str, args: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """No NaN/inf in the output or the gradients (gradients beyond a half dtype's range
    saturate at its largest finite value), for an upstream gradient of ones and for a random
    normal one; returns the output and the gradients for the ones."""
    ins = [a.detach().clone().requires_grad_() for a in args]
    out = op_fn(backend, op)(*ins)
    assert torch.isfinite(out).all(), f"{op}: non-finite output"
    gen = torch.Generator().manual_seed(2)
    normal = torch.randn(out.shape, dtype=torch.float32, generator=gen).to(out)
    for i, up in enumerate((normal, torch.ones_like(out))):
        grads = torch.autograd.grad(out, ins, up, retain_graph=i == 0)
        for j, g in enumerate(grads):
            assert torch.isfinite(g).all(), f"{op}: non-finite gradient of input {j}"
    return out, grads
