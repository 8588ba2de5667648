"""The numerics that break NTMs (docs/math.md#numerics), on every fast backend: zero-norm keys
and rows, β up to 1e4 and γ up to 50, underflowing sharpening, a write that erases a slot
completely, saturated half-precision gradients. No NaN or inf, forward or backward, and the
reference's answer. Backends and their shape lists: see tests/ops/test_backend_ops.py (the
Triton cases use its shapes: each new one is a compiled specialisation on the GPU run)."""

from __future__ import annotations

import pytest
import torch
from devices import NATIVE_BACKENDS as NATIVE
from devices import TRITON_BACKENDS as TRITON
from op_checks import DTYPES, check_against_reference, finite_fwd_bwd, inputs, need, op_fn
from test_backend_ops import HALF_SHAPE, per_backend

from ntm_fast import reference as R
from ntm_fast.numerics import SHARPEN_TINY

F64, F32 = torch.float64, torch.float32
MAXES = {dt: torch.finfo(dt).max for dt in (torch.float16, torch.bfloat16)}
MAXES.update({F32: float("inf"), F64: float("inf")})
TIGHT = dict(rtol=1e-6, atol=0.0)  # same formula, same order: equal up to one rounding
# per backend: the native ops' small odd shape, Triton's power-of-two shape of test_backend_ops
EDGE = per_backend(
    native=[(((2, 2, 9, 4, 3), dt), str(dt)) for dt in DTYPES],
    triton=[((HALF_SHAPE, dt), str(dt)) for dt in DTYPES],
)


@pytest.mark.parametrize(("backend", "device", "dims", "dtype"), EDGE)
@pytest.mark.parametrize("op", ["content_address", "address"])
def test_zero_norm_key_and_rows(op, backend, device, dims, dtype):
    need(backend, device)
    args = list(inputs(op, *dims, dtype, device))
    args[0][0, ::2] = 0  # every other memory row of batch 0
    args[0][1] = 0  # all of batch 1
    args[1][0, 1] = 0  # one key
    # At a zero row the exact dK/dM_i is k / ε (ε = 1e-8): ~1e8 times dK, beyond float16's
    # range: backends and reference all saturate it at ±65504 (numerics.saturate).
    finite_fwd_bwd(backend, op, args)
    check_against_reference(backend, op, args)
    if dtype == torch.float16:  # the comparison above did cover saturated entries
        ins = [a.detach().requires_grad_() for a in args]
        out = R.__dict__[op](*ins)
        grad_out = torch.randn(out.shape, dtype=F64).to(out)
        g_mem = torch.autograd.grad(out, ins[0], grad_out)[0]
        assert (g_mem[0, ::2].abs() == torch.finfo(dtype).max).any()


@pytest.mark.parametrize(("backend", "device", "dims", "dtype"), EDGE)
@pytest.mark.parametrize("op", ["content_address", "address", "sharpen"])
def test_large_beta_and_gamma(op, backend, device, dims, dtype):
    """β = 1e4, γ = 50: finite, rows still sum to 1, the reference's answer (float64 exactly
    enough for the tolerance table, the other dtypes within 0.02)."""
    need(backend, device)
    args = list(inputs(op, *dims, dtype, device))
    if op != "sharpen":
        args[2] = torch.full_like(args[2], 1e4)  # beta
    if op != "content_address":
        i = 5 if op == "address" else 1  # gamma
        args[i] = torch.full_like(args[i], 50.0)
    out, _ = finite_fwd_bwd(backend, op, args)
    ones = torch.ones(dims[:2], dtype=F64, device=device)
    torch.testing.assert_close(out.double().sum(-1), ones, atol=0.02, rtol=0)
    torch.testing.assert_close(out.double(), R.__dict__[op](*args).double(), atol=0.02, rtol=0)
    if dtype == F64:
        check_against_reference(backend, op, args)


@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
@pytest.mark.parametrize(("backend", "device"), [*NATIVE, *TRITON])
def test_write_exact_erase_many_heads(backend, device, dtype):
    """w·e = 1 exactly for some heads: the backward must not divide by (1 - w e)."""
    need(backend, device)
    args = list(inputs("write", 2, 4, 6, 5, 1, dtype, device))
    args[1][:, :2] = 0
    args[1][:, :2, 3] = 1  # two heads focus fully on slot 3
    args[2][:, :2] = 1  # and erase it completely
    finite_fwd_bwd(backend, "write", args)
    check_against_reference(backend, "write", args)


@pytest.mark.parametrize(("backend", "device"), NATIVE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sharpen_underflow(backend, device, dtype):
    """w̃ entries that underflow (or are exactly 0) before sharpening with γ up to 50 (Triton:
    test_sharpen_underflow_through_address, on its shapes)."""
    need(backend, device)
    w = torch.full((2, 2, 8), 1e-30, dtype=F64, device=device)  # 0 in float16 too
    w[0, 0, 3] = 1e-3
    w[0, 1, :4] = 0
    w[0, 1, 5] = 1.0
    w[1, 0, 0] = 0.5
    w[1, 1, 2] = 1.0
    gamma = torch.tensor([[50.0, 20.0], [1.0, 50.0]], dtype=F64, device=device)
    args = (w.to(dtype), gamma.to(dtype))
    finite_fwd_bwd(backend, "sharpen", args)
    check_against_reference(backend, "sharpen", args)
    # An all-zero (invalid) weighting sharpens to zeros, not NaN.
    zero = op_fn(backend, "sharpen")(torch.zeros_like(args[0]), args[1])
    assert torch.equal(zero, torch.zeros_like(zero))
    # Through the fused path: a one-hot previous weighting, gate 0 and a one-hot shift make w̃
    # exactly 0 off the focus; γ = 50.
    a = list(inputs("address", 2, 1, 12, 4, 3, dtype, device))
    a[3].zero_()  # gate
    a[4].zero_()
    a[4][..., 2] = 1  # shift +1
    a[5].fill_(50.0)
    a[6].zero_()
    a[6][..., 4] = 1
    finite_fwd_bwd(backend, "address", a)
    out = op_fn(backend, "address")(*a)
    assert torch.equal(out.argmax(-1), torch.full((2, 1), 5, device=device))


@pytest.mark.parametrize(("backend", "device"), TRITON)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sharpen_underflow_through_address(backend, device, dtype):
    """A focused w_prev with g = 0 and a one-hot shift: w̃ is exactly 0 almost everywhere and
    tiny elsewhere; γ > 1 must not give NaN in w or in ∂L/∂γ (the native ops:
    test_sharpen_underflow)."""
    need(backend, device)
    B, H, N, W, S = HALF_SHAPE
    args = list(inputs("address", B, H, N, W, S, dtype, device))
    w_prev = torch.zeros(B, H, N, dtype=dtype, device=device)
    w_prev[..., 3] = 1
    args[3] = torch.zeros_like(args[3])  # gate: keep w_prev
    args[4] = torch.zeros_like(args[4])
    args[4][..., 2] = 1  # shift by +1
    args[5] = torch.full_like(args[5], 30.0)
    args[6] = w_prev
    out, _ = finite_fwd_bwd(backend, "address", args)
    assert out[..., 4].double().allclose(torch.ones(B, H, dtype=F64, device=device))
    w = inputs("sharpen", B, H, N, W, S, dtype, device)[0]
    w[..., ::2] = 0
    w[..., 1] = 1e-30 if dtype != torch.float16 else 1e-7
    gamma = torch.full((B, H), 50.0, dtype=dtype, device=device)
    check_against_reference(backend, "sharpen", (w, gamma))


@pytest.mark.parametrize(("backend", "device"), NATIVE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sharpen_all_zero_row_gradient(backend, device, dtype):
    """The reference's definition for an all-zero w̃ row: it divides by 1 (not by a floored
    maximum), the normaliser is clamped at SHARPEN_TINY (no gradient through the clamp), so
    dL/dw̃_i = ḡ_i / SHARPEN_TINY = 1e30 ḡ_i for γ = 1 (and 0 for γ > 1, where 0^(γ-1) = 0);
    float16 saturates it. Native must give exactly that, not 1/TINY² = 1e60 (inf in float32)."""
    need(backend, device)
    w = torch.zeros(2, 2, 6, dtype=dtype, device=device)
    w[1, 1, 2] = 0.5  # one valid row beside the zero rows
    gamma = torch.tensor([[1.0, 3.0], [1.0, 2.0]], dtype=dtype, device=device)
    grad_out = torch.randn(2, 2, 6, dtype=F64).to(w)
    n_in = [w.clone().requires_grad_(), gamma.clone().requires_grad_()]
    r_in = [w.clone().requires_grad_(), gamma.clone().requires_grad_()]
    out = op_fn(backend, "sharpen")(*n_in)
    ref = R.sharpen(*r_in)
    assert torch.equal(out, ref)
    grads = torch.autograd.grad(out, n_in, grad_out)
    ref_grads = torch.autograd.grad(ref, r_in, grad_out)
    expected = (grad_out.double() / SHARPEN_TINY).clamp(-MAXES[dtype], MAXES[dtype])
    torch.testing.assert_close(grads[0][0, 0].double(), expected[0, 0].to(w).double(), **TIGHT)
    assert torch.equal(grads[0][0, 1], torch.zeros_like(grads[0][0, 1]))  # γ = 3
    for g, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg, **TIGHT)


@pytest.mark.parametrize(("backend", "device"), NATIVE)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_sharpen_tiny_maximum_is_scale_free(backend, device, dtype):
    """A row whose maximum is positive but below SHARPEN_TINY is divided by that maximum (the
    reference's scale-free form): with γ = 10 the output still sums to 1."""
    need(backend, device)
    w = torch.tensor([[[1e-35, 5e-36, 2e-36, 0.0]]], dtype=dtype, device=device)
    gamma = torch.tensor([[10.0]], dtype=dtype, device=device)
    out = op_fn(backend, "sharpen")(w, gamma)
    torch.testing.assert_close(out.sum(), torch.ones((), dtype=dtype, device=device))
    check_against_reference(backend, "sharpen", (w, gamma))


@pytest.mark.parametrize(("backend", "device"), TRITON)
@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
@pytest.mark.parametrize("op", ["content_address", "address"])
def test_backward_tile_narrower_than_forward(op, backend, device, dtype):
    """The Triton backwards walk W in a quarter of the forward's (N, W) tile (register
    pressure on a GPU, kernels/utils.py's bwd_tile); here both walk several W tiles and
    recompute K in their own."""
    need(backend, device)
    from ntm_fast._kernels import utils as KU

    N, W = 64, 160
    assert KU.bwd_tile(N, W)[:2] == (KU.block_n(N), KU.block_w(W, KU.block_n(N)) // 4)
    assert KU.bwd_tile(N, W)[1] < KU.block_w(W, KU.block_n(N)) < W
    check_against_reference(backend, op, inputs(op, 1, 2, N, W, 3, dtype, device))


@pytest.mark.parametrize(("backend", "device"), TRITON)
def test_gradcheck_tiled_address(backend, device):
    need(backend, device)
    from ntm_fast._kernels import utils as KU

    old = KU.set_max_block_n(2)
    try:
        ranges = dict(beta=(0.0, 3.0), gamma=(1.0, 2.5))
        args = [a.requires_grad_() for a in inputs("address", 1, 1, 5, 2, 3, F64, device, **ranges)]
        assert torch.autograd.gradcheck(op_fn(backend, "address"), args)
    finally:
        KU.set_max_block_n(old)
