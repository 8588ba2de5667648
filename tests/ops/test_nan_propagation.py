"""NaN in, NaN out, identically on every backend (issue 16 item 6).

For every op and every argument, one element is set to NaN; the output's NaN pattern and
every gradient's NaN pattern must be the reference's on each fast backend (native; Triton
under TRITON_INTERPRET=1, single-tile and tiled). A backend that clamps or renormalises a NaN
away (the Triton kernels once turned a NaN weighting into 0) fails here.
"""

from __future__ import annotations

import os

import pytest
import torch
from tolerances import OP_ARGS

from ntm_fast import backends
from ntm_fast.op_table import make_inputs

B, H, N, W, S = 2, 2, 5, 3, 3
F64 = torch.float64


def _inputs(op: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    args = make_inputs(op, B, H, N, W, S, dtype, generator=g, beta=(0.0, 3.0), gamma=(1.0, 3.0))
    return dict(zip(OP_ARGS[op], args, strict=True))


def _nan_patterns(backend: str, op: str, args: dict[str, torch.Tensor], poisoned: str):
    leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    with torch.no_grad():
        leaves[poisoned].view(-1)[1] = float("nan")
    out = getattr(backends.module(backend), op)(*leaves.values())
    grads = torch.autograd.grad(out, list(leaves.values()), torch.ones_like(out))
    return out.isnan(), [g.isnan() for g in grads]


def _fast_backends() -> list:
    out = []
    for name in ("native", "triton"):
        reason = backends.unavailable_reason(name, torch.device("cpu"))
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param(name, marks=marks))
    return out


CASES = [(op, arg) for op, names in OP_ARGS.items() for arg in names]


pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


@pytest.mark.parametrize("backend", _fast_backends())
@pytest.mark.parametrize(("op", "arg"), CASES, ids=[f"{o}-{a}" for o, a in CASES])
def test_nan_input_gives_the_reference_nan_pattern(backend, op, arg):
    if backend == "triton" and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton on CPU tensors needs TRITON_INTERPRET=1")
    args = _inputs(op, torch.float32)
    ref_out, ref_grads = _nan_patterns("reference", op, args, arg)
    assert ref_out.any(), "the reference propagates the NaN"
    out, grads = _nan_patterns(backend, op, args, arg)
    assert torch.equal(out, ref_out), f"forward NaN pattern: {out} vs reference {ref_out}"
    for name, g, r in zip(OP_ARGS[op], grads, ref_grads, strict=True):
        assert torch.equal(g, r), f"d/d{name} NaN pattern differs from the reference"


@pytest.mark.parametrize(("op", "arg"), [("sharpen", "w"), ("address", "w_prev")])
def test_triton_tiled_path_propagates_nan(op, arg):
    """N larger than the tile: the multi-tile kernels (sharpen statistics over tiles)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton on CPU tensors needs TRITON_INTERPRET=1")
    if backends.unavailable_reason("triton", torch.device("cpu")):
        pytest.skip("triton unavailable")
    from ntm_fast._kernels import utils as KU

    args = _inputs(op, torch.float32)
    ref_out, ref_grads = _nan_patterns("reference", op, args, arg)
    old = KU.set_max_block_n(2)
    try:
        out, grads = _nan_patterns("triton", op, args, arg)
    finally:
        KU.set_max_block_n(old)
    assert torch.equal(out, ref_out)
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.equal(g, r)


@pytest.mark.parametrize(("op", "arg"), [("sharpen", "w"), ("write", "add"), ("read", "w")])
def test_half_precision_gradients_keep_nan(op, arg):
    """float16 gradients saturate at ±65504 (numerics.saturate), but a NaN stays NaN."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton on CPU tensors needs TRITON_INTERPRET=1")
    if backends.unavailable_reason("triton", torch.device("cpu")):
        pytest.skip("triton unavailable")
    args = _inputs(op, torch.float16)
    ref_out, ref_grads = _nan_patterns("reference", op, args, arg)
    out, grads = _nan_patterns("triton", op, args, arg)
    assert torch.equal(out, ref_out)
    for name, g, r in zip(OP_ARGS[op], grads, ref_grads, strict=True):
        assert torch.equal(g, r), name
