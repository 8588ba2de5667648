"""Fuzzed equivalence: every fast backend against the reference, forward and backward, for
every public op (address, read, write and the single stages), over random shapes, dtypes,
head counts, shift sizes and value regimes that include extreme but valid inputs:

* β up to 1e4 (and exactly 0), γ up to 50 (and exactly 1);
* memory values up to 1e4 in magnitude, all-zero memory, zero-norm rows and keys;
* one-hot and uniform weightings and shifts, gates and erases of exactly 0 or 1.

float64 and float32 are checked forward and backward (a random upstream gradient through
``torch.autograd.grad``); float16 and bfloat16 forward only. Every output and gradient of
every backend, the reference included, must be finite: valid inputs never give NaN or inf.

Tolerances are tests/tolerances.py's table, widened only by the conditioning of the example
at hand (see "Extreme values" there): β·K amplifies the rounding of the cosine K by β, so the
addressing bounds grow with β_max / 50 once β exceeds the table's β <= 50; gradients are
compared relative to the largest reference gradient of the same tensor (cancellation in the
softmax / sharpening backwards makes small entries carry the absolute error of the large ones).

Examples per backend (7 ops, each its own hypothesis test): see EXAMPLES below; the CI profile
(default) runs 100 per op for native and 8 per op for Triton (interpreted, ~5 ms per program),
``HYPOTHESIS_PROFILE=long`` runs 1000 and 60.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tolerances import FORWARD, GRAD_SCALE, OP_ARGS, assert_close_allowing, cosine_allowance

from ntm_fast import backends, reference
from ntm_fast.op_table import draw

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
EXAMPLES = {
    "ci": {"native": 100, "triton": 8},
    "long": {"native": 1000, "triton": 60},
}[PROFILE if PROFILE in ("ci", "long") else "ci"]
# Shapes per backend: the interpreter runs one Python program per (batch, head) and tile.
MAX_DIMS = {
    "native": dict(B=3, H=4, N=24, W=12),
    "triton": dict(B=2, H=2, N=10, W=6),
}

FAST = ["native", "triton"]
BETA_TABLE = 50.0  # tests/tolerances.py's float32 row holds for β <= 50


def regimes():
    """Which extreme each argument takes in one example."""
    return st.fixed_dictionaries(
        dict(
            memory=st.sampled_from(["normal", "large", "zero-rows", "all-zero"]),
            key=st.sampled_from(["normal", "zero-heads", "all-zero"]),
            beta=st.sampled_from([0.0, 1.0, 50.0, 1e4]),  # β drawn in [0, this]; 0: exactly 0
            gate=st.sampled_from(["normal", "binary"]),
            shift=st.sampled_from(["normal", "one-hot", "uniform"]),
            gamma=st.sampled_from([1.0, 5.0, 50.0]),  # γ drawn in [1, this]
            weighting=st.sampled_from(["normal", "one-hot", "uniform", "peaked"]),
            erase=st.sampled_from(["normal", "binary"]),
            add=st.sampled_from(["normal", "large"]),
        )
    )


@st.composite
def cases(draw, backend: str, dtypes):
    m = MAX_DIMS[backend]
    B = draw(st.integers(1, m["B"]))
    H = draw(st.integers(1, m["H"]))
    N = draw(st.integers(1, m["N"]))
    W = draw(st.integers(1, m["W"]))
    S = 2 * draw(st.integers(0, min(3, (N - 1) // 2))) + 1
    dtype = draw(st.sampled_from(dtypes))
    return dict(
        B=B,
        H=H,
        N=N,
        W=W,
        S=S,
        dtype=dtype,
        regime=draw(regimes()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def _dist(kind: str, shape, g) -> torch.Tensor:
    """A distribution over the last dim (float64)."""
    n = shape[-1]
    if kind == "one-hot":
        idx = torch.randint(n, shape[:-1], generator=g)
        return torch.nn.functional.one_hot(idx, n).double()
    if kind == "uniform":
        return torch.full(shape, 1.0 / n, dtype=torch.float64)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if kind == "peaked":
        x = 8 * x  # a few entries dominate, many far below them
    return torch.softmax(x, -1)


def make_inputs(op: str, c: dict) -> list[torch.Tensor]:
    """Valid float64 inputs for ``op`` (ntm_fast.op_table's factory) moved into the example's
    regime (cast to its dtype later)."""
    g = torch.Generator().manual_seed(c["seed"])
    B, H, N, W, S, r = c["B"], c["H"], c["N"], c["W"], c["S"], c["regime"]
    ranges = dict(beta=(0.0, r["beta"]), gamma=(1.0, r["gamma"]))
    out = draw(OP_ARGS[op], B, H, N, W, S, generator=g, **ranges)

    def rand(*shape):
        return torch.rand(shape, generator=g, dtype=torch.float64)

    for name, t in out.items():
        if name == "memory":
            if r["memory"] == "large":
                t = t * 1e4 / t.abs().amax().clamp_min(1e-300)  # up to 1e4 in magnitude
            elif r["memory"] == "zero-rows":
                t = t * (rand(B, N, 1) > 0.4)
            elif r["memory"] == "all-zero":
                t = torch.zeros_like(t)
        elif name == "key":
            t = torch.tanh(t)
            if r["key"] == "zero-heads":
                t = t * (rand(B, H, 1) > 0.5)
            elif r["key"] == "all-zero":
                t = torch.zeros_like(t)
        elif (name, r.get(name)) in (("gate", "binary"), ("erase", "binary")):
            t = (t > 0.5).double()
        elif name == "shift" and r["shift"] != "normal":
            t = _dist(r["shift"], (B, H, S), g)
        elif name in ("w", "w_prev", "w_content") and r["weighting"] != "normal":
            t = _dist(r["weighting"], (B, H, N), g)
        elif name == "add":
            t = torch.tanh(t) * (1e4 if r["add"] == "large" else 1)
        out[name] = t
    return [out[n].to(c["dtype"]) for n in OP_ARGS[op]]


def beta_factor(op: str, c: dict) -> float:
    """How far beyond the table's β <= 50 this example goes (1 within it)."""
    if op not in ("content_address", "address"):
        return 1.0
    return max(1.0, c["regime"]["beta"] / BETA_TABLE)


def forward_bound(op: str, c: dict) -> dict:
    """Forward atol/rtol: the table's row, times the β factor (see tolerances.py)."""
    dt, f = c["dtype"], beta_factor(op, c)
    t = dict(FORWARD[dt])
    if dt in (torch.float16, torch.bfloat16):
        # float32 internals with β beyond the table: its float32 row scaled, if larger than
        # the output rounding the half row allows for
        f32 = FORWARD[torch.float32]
        return dict(atol=max(t["atol"], f32["atol"] * f), rtol=max(t["rtol"], f32["rtol"] * f))
    return dict(atol=t["atol"] * f, rtol=t["rtol"] * f)


def run_case(backend: str, op: str, c: dict) -> None:
    reason = backends.unavailable_reason(backend, torch.device("cpu"))
    if reason is not None:
        pytest.skip(f"backend {backend!r} unavailable on cpu: {reason}")
    inputs = make_inputs(op, c)
    grad_mode = c["dtype"] in (torch.float32, torch.float64)
    results = {}
    for name in ("reference", backend):
        args = [t.clone().requires_grad_(grad_mode) for t in inputs]
        out = getattr(backends.module(name), op)(*args)
        assert out.dtype == c["dtype"], f"{name} {op}: output dtype {out.dtype}"
        assert torch.isfinite(out).all(), f"{name} {op}: non-finite output for {c}"
        grads = []
        if grad_mode:
            up = torch.randn(
                out.shape,
                generator=torch.Generator().manual_seed(c["seed"] + 1),
                dtype=torch.float64,
            ).to(out.dtype)
            grads = torch.autograd.grad(out, args, up)
            for arg, gr in zip(OP_ARGS[op], grads, strict=True):
                assert torch.isfinite(gr).all(), f"{name} {op}: non-finite d/d{arg} for {c}"
        results[name] = (out.detach(), grads, up if grad_mode else None)
    (ref_out, ref_grads, up), (out, grads, _) = results["reference"], results[backend]
    fb = forward_bound(op, c)
    torch.testing.assert_close(out, ref_out, **fb, msg=lambda m: f"{backend} {op} forward {c}: {m}")
    for arg, gr, ref in zip(OP_ARGS[op] if grad_mode else [], grads, ref_grads, strict=True):
        assert_close_allowing(
            gr,
            ref,
            fb["atol"] * GRAD_SCALE,
            fb["rtol"] * GRAD_SCALE,
            f"{backend} {op} d/d{arg} {c}",
            cosine_allowance(op, arg, inputs, up),
        )


ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def _fuzz_test(backend: str):
    @pytest.mark.parametrize("op", list(OP_ARGS))
    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(c=cases(backend, ALL_DTYPES))
    def test(op, c):
        run_case(backend, op, c)

    test.__name__ = f"test_fuzz_{backend}"
    return test


test_fuzz_native = _fuzz_test("native")
test_fuzz_triton = _fuzz_test("triton")


def test_every_public_op_is_fuzzed():
    assert set(OP_ARGS) == set(reference.__all__) - {"uniform_shift"}
