"""Triton backend: finite-difference gradients, custom-op registration (opcheck,
torch.compile), edge-case numerics, validation messages and the unavailable-device error.

Every tensor is made on ``DEVICE`` (tests/devices.py: the CPU under the interpreter, CUDA with
NTM_FAST_TRITON_COMPILED=1); tests/test_device_lint.py fails on a factory call without it."""

from __future__ import annotations

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import torch
from devices import DEVICE
from hypothesis import given
from hypothesis import strategies as st
from ntm_fast._kernels import utils as KU
from test_triton_ops import HALF_SHAPE, OPS, SHAPES, check_op, make_inputs
from tolerances import forward_tol, grad_tol

from ntm_fast import ops
from ntm_fast import reference as R
from ntm_fast import triton_backend as T
from ntm_fast.backends import BackendUnavailableError

F64 = torch.float64
LOW = [torch.float32, torch.float16, torch.bfloat16]


def _gradcheck_inputs(op, dims):
    args = make_inputs(op, *dims, F64, beta_max=3.0, gamma_max=2.5)
    return tuple(a.detach().requires_grad_() for a in args)


@pytest.mark.parametrize("op", OPS)
def test_gradcheck(op):
    """float64 finite differences through the Triton forward and hand-written backward."""
    assert torch.autograd.gradcheck(getattr(T, op), _gradcheck_inputs(op, (1, 2, 5, 3, 3)))


def test_gradcheck_tiled_address():
    old = KU.set_max_block_n(2)
    try:
        assert torch.autograd.gradcheck(T.address, _gradcheck_inputs("address", (1, 1, 5, 2, 3)))
    finally:
        KU.set_max_block_n(old)


@pytest.mark.parametrize("op", OPS)
def test_opcheck_forward_and_backward_ops(op):
    args = make_inputs(op, 2, 2, 5, 3, 3, torch.float32)
    fwd = getattr(torch.ops.ntm_fast_triton, f"{op}_fwd").default
    bwd = getattr(torch.ops.ntm_fast_triton, f"{op}_bwd").default
    torch.library.opcheck(fwd, tuple(a.detach().requires_grad_() for a in args))
    grad = torch.randn_like(getattr(R, op)(*args))
    torch.library.opcheck(bwd, (grad, *args))


def test_torch_compile_fullgraph():
    """One NTM memory step (address, read, write) compiled as a single graph, with backward."""
    mem, key, beta, gate, shift, gamma, w_prev = make_inputs("address", 2, 2, 7, 5, 3, F64)
    erase = torch.rand(2, 2, 5, dtype=F64, device=DEVICE)
    add = torch.randn(2, 2, 5, dtype=F64, device=DEVICE)

    def step(backend, mem, key):
        w = backend.address(mem, key, beta, gate, shift, gamma, w_prev)
        r = backend.read(mem, w)
        return r.sum() + backend.write(mem, w, erase, add).square().sum()

    compiled = torch.compile(lambda m, k: step(T, m, k), fullgraph=True, backend="aot_eager")
    m1, k1 = mem.clone().requires_grad_(), key.clone().requires_grad_()
    m2, k2 = mem.clone().requires_grad_(), key.clone().requires_grad_()
    out = compiled(m1, k1)
    ref = step(R, m2, k2)
    torch.testing.assert_close(out, ref, **forward_tol(F64))
    grads = torch.autograd.grad(out, (m1, k1))
    for a, b in zip(grads, torch.autograd.grad(ref, (m2, k2)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# Edge-case numerics (docs/math.md#numerics): no NaN/inf, forward or backward.
# ---------------------------------------------------------------------------------------------


def _finite_fwd_bwd(op, args):
    xs = [a.detach().clone().requires_grad_() for a in args]
    out = getattr(T, op)(*xs)
    assert torch.isfinite(out).all(), f"{op}: non-finite output"
    grads = torch.autograd.grad(out, xs, torch.randn_like(out.float()).to(out.dtype))
    for i, g in enumerate(grads):
        assert torch.isfinite(g).all(), f"{op}: non-finite gradient of input {i}"
    return out, grads


@pytest.mark.parametrize("dtype", [F64, *LOW], ids=str)
@pytest.mark.parametrize("op", ["content_address", "address"])
def test_zero_norm_key_and_rows(op, dtype):
    args = list(make_inputs(op, *HALF_SHAPE, dtype))
    args[0][0, 2] = 0  # a zero memory row
    args[0][1] = 0  # an all-zero memory
    args[1][0, 1] = 0  # a zero key
    _finite_fwd_bwd(op, args)
    check_op(op, args)


@pytest.mark.parametrize("dtype", [F64, *LOW], ids=str)
def test_large_beta_and_gamma(dtype):
    args = list(make_inputs("address", *HALF_SHAPE, dtype))
    args[2] = torch.full_like(args[2], 1e4)  # β up to 1e4
    args[5] = torch.full_like(args[5], 50.0)  # γ up to 50
    out, _ = _finite_fwd_bwd("address", args)
    ones = torch.ones(HALF_SHAPE[:2], dtype=F64, device=DEVICE)
    torch.testing.assert_close(out.double().sum(-1), ones, atol=0.02, rtol=0)
    ref = R.address(*args)
    torch.testing.assert_close(out.double(), ref.double(), atol=0.02, rtol=0)


@pytest.mark.parametrize("dtype", [F64, *LOW], ids=str)
def test_sharpen_underflow(dtype):
    """A focused w_prev with g = 0 and a one-hot shift: w̃ is exactly 0 almost everywhere and
    tiny elsewhere; γ > 1 must not give NaN in w or in ∂L/∂γ."""
    B, H, N, W, S = HALF_SHAPE
    args = list(make_inputs("address", B, H, N, W, S, dtype))
    w_prev = torch.zeros(B, H, N, dtype=dtype, device=DEVICE)
    w_prev[..., 3] = 1
    args[3] = torch.zeros_like(args[3])  # gate: keep w_prev
    args[4] = torch.zeros_like(args[4])
    args[4][..., 2] = 1  # shift by +1
    args[5] = torch.full_like(args[5], 30.0)
    args[6] = w_prev
    out, _ = _finite_fwd_bwd("address", args)
    assert out[..., 4].double().allclose(torch.ones(B, H, dtype=F64, device=DEVICE))
    w = make_inputs("sharpen", B, H, N, W, S, dtype)[0]
    w[..., ::2] = 0
    w[..., 1] = 1e-30 if dtype != torch.float16 else 1e-7
    check_op("sharpen", (w, torch.full((B, H), 50.0, dtype=dtype, device=DEVICE)))


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=str)
@pytest.mark.parametrize("op", ["content_address", "address"])
def test_backward_tile_narrower_than_forward(op, dtype):
    """The backwards walk W in half the forward's (N, W) tile (register pressure on a GPU,
    docs/gpu-resources.md); here both walk several W tiles and recompute K in their own."""
    N, W = 64, 160
    assert KU.block_w(W, 2 * KU.block_n(N)) < KU.block_w(W, KU.block_n(N)) < W
    check_op(op, make_inputs(op, 1, 2, N, W, 3, dtype))


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=str)
def test_write_exact_erase_many_heads(dtype):
    """w e = 1 exactly for some heads: the backward must not divide by 1 - w e."""
    mem, w, erase, add = make_inputs("write", 2, 4, 6, 5, 1, dtype)
    w[:, :2, 1] = 1
    erase[:, :2, :] = 1
    _finite_fwd_bwd("write", (mem, w, erase, add))
    check_op("write", (mem, w, erase, add))


# ---------------------------------------------------------------------------------------------
# Validation and availability.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, mutate",
    [
        ("address", lambda a: (a[0].transpose(1, 2), *a[1:])),
        ("address", lambda a: (*a[:4], a[4][..., :2], *a[5:])),
        ("read", lambda a: (a[0], a[1].to(torch.float32))),
        ("write", lambda a: (a[0], a[1], a[2][:, :, :1], a[3])),
        ("sharpen", lambda a: (a[0], "1.0")),
    ],
)
def test_validation_messages_match_reference(op, mutate):
    bad = mutate(make_inputs(op, 2, 2, 5, 3, 3, F64))
    with pytest.raises((ValueError, TypeError)) as ref_err:
        getattr(R, op)(*bad)
    with pytest.raises(type(ref_err.value)) as tri_err:
        getattr(T, op)(*bad)
    assert str(tri_err.value) == str(ref_err.value)


def test_dispatch_through_ops():
    args = make_inputs("address", 1, 2, 6, 4, 3, torch.float32)
    torch.testing.assert_close(
        ops.address(*args, backend="triton"), R.address(*args), **forward_tol(torch.float32)
    )


@pytest.mark.skipif(DEVICE != "cpu", reason="checks the CPU-without-interpreter error")
@pytest.mark.parametrize("op", OPS)
def test_cpu_without_interpreter_raises(op, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    reason = T.unavailable_reason(torch.device("cpu"))
    assert reason is not None and "CUDA" in reason and "TRITON_INTERPRET=1" in reason
    args = make_inputs(op, 1, 1, 3, 2, 1, torch.float32)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        getattr(T, op)(*args)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        getattr(torch.ops.ntm_fast_triton, f"{op}_fwd")(*args)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        getattr(ops, op)(*args, backend="triton")


def test_missing_triton_says_how_to_install(monkeypatch):
    monkeypatch.setattr(T, "_IMPORT_ERROR", "triton is not importable (x); pip install triton")
    reason = T.unavailable_reason("cpu")
    assert reason is not None and "pip install triton" in reason
    with pytest.raises(BackendUnavailableError, match="pip install triton"):
        T.read(*make_inputs("read", 1, 1, 3, 2, 1, torch.float32))


@given(
    # the values are drawn, the shapes are test_matches_reference's (random shapes are
    # test_hypothesis_shapes' job; here each would be one more compile on the GPU run)
    dims=st.sampled_from(SHAPES),
    beta=st.sampled_from([0.0, 1e-3, 1.0, 50.0, 1e4]),
    gamma=st.sampled_from([1.0, 1.5, 20.0, 50.0]),
    gate=st.sampled_from([0.0, 0.5, 1.0]),
    zero_key=st.booleans(),
    zero_row=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_hypothesis_edge_values(dims, beta, gamma, gate, zero_key, zero_row, seed):
    """The fused addressing at the edges of its domain, float64: matches the reference and
    stays finite (β up to 1e4, γ up to 50, gates 0/1, zero-norm keys and rows)."""
    args = list(make_inputs("address", *dims, F64, seed=seed))
    args[2] = torch.full_like(args[2], beta)
    args[3] = torch.full_like(args[3], gate)
    args[5] = torch.full_like(args[5], gamma)
    if zero_key:
        args[1][0, 0] = 0
    if zero_row:
        args[0][0, 0] = 0
    out, _ = _finite_fwd_bwd("address", args)
    xs = [a.clone().requires_grad_() for a in args]
    ref = R.address(*xs)
    torch.testing.assert_close(out, ref, **forward_tol(F64))
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(ref.shape, dtype=F64, generator=gen).to(DEVICE)  # CPU generator, moved
    ref_grads = torch.autograd.grad(ref, xs, g)
    ts = [a.clone().requires_grad_() for a in args]
    grads = torch.autograd.grad(T.address(*ts), ts, g)
    # At a zero-norm key or row the cosine's gradient is (β/ε)·Σ ∂L/∂z_i M_i: rounding in
    # ∂L/∂z (itself a cancellation when γ makes w one-hot) is amplified by up to 1e4/1e-8, so
    # those cases get a relative bound of 1e-3 instead of grad_tol's 1e-8.
    rtol = 1e-3 if (zero_key or zero_row) else grad_tol(F64)["rtol"]
    for i, (a, b) in enumerate(zip(grads, ref_grads, strict=True)):
        scale = max(1.0, b.abs().max().item())
        torch.testing.assert_close(
            a, b, atol=grad_tol(F64)["atol"] * scale, rtol=rtol, msg=f"grad of input {i}"
        )
