"""The reference memory ops' gradients and edge-case numerics: float64 finite differences
(torch.autograd.gradcheck), hand-derived gradients (docs/math-backward.md), zero norms, huge β,
underflowing sharpening, full erases.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference_cases import ALL_DTYPES, ARGS, EXACT, F64, LOW_DTYPES, bh, make_inputs, one_hot, t64
from tolerances import FORWARD

from ntm_fast import reference as R
from ntm_fast.numerics import COSINE_EPS

# ---------------------------------------------------------------------------------------------
# gradcheck (float64, finite differences)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(ARGS))
@pytest.mark.parametrize("H", [1, 3])
def test_gradcheck(op, H):
    if op != "write" and H == 3:
        H = 2
    inp = make_inputs(B=2, H=H, N=5, W=3, S=3, seed=7)
    args = tuple(inp[a].clone().requires_grad_() for a in ARGS[op])
    assert torch.autograd.gradcheck(getattr(R, op), args)


def test_gradcheck_uniform_shift_non_integer_x():
    x = t64([[0.3, -1.6], [1.45, -0.2]]).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: R.uniform_shift(t, 5), (x,))
    # ds/dx is -1 on the lower slot and +1 on the upper one
    (grad,) = torch.autograd.grad(R.uniform_shift(x, 5)[0, 0, 2], x)  # s(0) for x = 0.3
    assert torch.equal(grad, t64([[-1.0, 0.0], [0.0, 0.0]]))


def test_gradcheck_address_through_pipeline_with_s_equals_n():
    inp = make_inputs(B=1, H=2, N=5, W=4, S=5, seed=11)
    args = tuple(inp[a].clone().requires_grad_() for a in ARGS["address"])
    assert torch.autograd.gradcheck(R.address, args)


# ---------------------------------------------------------------------------------------------
# Edge-case numerics
# ---------------------------------------------------------------------------------------------


def _grads(out, tensors, seed=0):
    g = torch.Generator().manual_seed(seed)
    upstream = torch.randn(out.shape, generator=g, dtype=F64).to(out.dtype)
    return torch.autograd.grad(out, tensors, upstream, allow_unused=True)


def _all_finite(*ts):
    return all(t is None or bool(torch.isfinite(t).all()) for t in ts)


def _zero_norm_inputs(dtype):
    memory = torch.randn(2, 4, 3, dtype=F64)
    memory[0, 1] = 0  # one zero row
    memory[1] = 0  # all-zero memory in batch 1
    key = torch.randn(2, 2, 3, dtype=F64)
    key[0, 0] = 0  # zero-norm key
    beta = t64([[2.0, 1e4], [3.0, 1e4]])  # includes huge β
    return [t.to(dtype).requires_grad_() for t in (memory, key, beta)]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_zero_norm_key_and_rows_forward(dtype):
    memory, key, beta = _zero_norm_inputs(dtype)
    w = R.content_address(memory, key, beta)
    assert w.dtype == dtype
    assert _all_finite(w)
    w64 = w.double()
    # a zero key or an all-zero memory has K = 0 everywhere: uniform weighting
    tol = FORWARD[dtype]
    torch.testing.assert_close(w64[0, 0], torch.full((4,), 0.25, dtype=F64), **tol)
    torch.testing.assert_close(w64[1], torch.full((2, 4), 0.25, dtype=F64), **tol)
    # a zero row has K = 0, not NaN: with huge β all mass goes to rows with K > 0 if any
    torch.testing.assert_close(w64.sum(-1), torch.ones(2, 2, dtype=F64), **tol)
    assert (w64 >= 0).all()


# The exact gradient at a zero norm is M_i/ε ≈ 1e8, beyond float16's range: it saturates at
# finfo(float16).max (ntm_fast.numerics.saturate) instead of overflowing to inf.
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_zero_norm_key_and_rows_gradients_finite(dtype):
    memory, key, beta = _zero_norm_inputs(dtype)
    w = R.content_address(memory, key, beta)
    assert _all_finite(*_grads(w, (memory, key, beta)))


def test_zero_norm_key_gradient_value_float64():
    # K_i(k) = k·M_i / (‖k‖‖M_i‖ + ε): along any direction v, K_i(t v) = t v·M_i/ε + O(t²),
    # so at k = 0 the gradient of K_i is M_i/ε and ∂L/∂k = Σ_i β ∂L/∂z_i M_i / ε
    # (docs/math.md#zero-norm-keys-and-rows).
    memory = t64([[[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]])
    key = torch.zeros(1, 1, 2, dtype=F64, requires_grad=True)
    beta = 2.0
    w = R.content_address(memory, key, t64([[beta]]))
    upstream = bh([1.0, -2.0, 0.5])
    (gk,) = torch.autograd.grad(w, key, upstream)
    wc = [1 / 3] * 3
    gz = [
        wc[i] * (upstream[0, 0, i].item() - sum(x / 3 for x in [1.0, -2.0, 0.5])) for i in range(3)
    ]
    expected = [
        sum(beta * gz[i] * memory[0, i, m].item() / COSINE_EPS for i in range(3)) for m in range(2)
    ]
    torch.testing.assert_close(gk, bh(expected), rtol=1e-7, atol=0)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_huge_beta(dtype):
    memory = t64([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]]).to(dtype).requires_grad_()
    key = t64([[[1.0, 0.1]]]).to(dtype).requires_grad_()
    beta = t64([[1e4]]).to(dtype).requires_grad_()
    w = R.content_address(memory, key, beta)
    assert w.dtype == dtype
    # K = (0.995, 0.677, 0.0995): the gap times β is ~3e3, so the output is one-hot on row 0
    torch.testing.assert_close(w.double(), bh([1.0, 0.0, 0.0]), **FORWARD[dtype])
    assert _all_finite(w, *_grads(w, (memory, key, beta)))


def _tiny(dtype):
    # an entry of w̃ whose γ-th power underflows to 0 (subnormal where the dtype has them)
    return {
        torch.float64: 1e-300,
        torch.float32: 1e-40,
        torch.float16: 2.0**-24,
        torch.bfloat16: 2.0**-133,
    }[dtype]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("gamma", [1.0, 2.5, 50.0])
def test_sharpen_underflowing_entries(dtype, gamma):
    tiny = _tiny(dtype)
    w = t64([[[0.0, tiny, 1.0, 0.5]]]).to(dtype)
    assert w[0, 0, 1] > 0  # representable (subnormal) in this dtype
    w.requires_grad_()
    g = t64([[gamma]]).to(dtype).requires_grad_()
    out = R.sharpen(w, g)
    assert out.dtype == dtype
    # hand value: tiny^γ / (1 + 0.5^γ) is 0 for γ > 1 at these magnitudes; equals tiny for γ = 1
    tv = w[0, 0, 1].double().item()
    denom = tv**gamma + 1 + 0.5**gamma
    expected = bh([0.0, tv**gamma / denom, 1 / denom, 0.5**gamma / denom])
    torch.testing.assert_close(out.double(), expected, **FORWARD[dtype])
    assert _all_finite(out, *_grads(out, (w, g)))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_sharpen_all_entries_tiny(dtype):
    # every entry of w̃ underflows when raised to γ; eq. (9) is scale-free so w is unchanged by
    # the scale: (1, 2, 0) -> (1, 2^γ, 0) / (1 + 2^γ)
    tiny = {
        torch.float64: 2.0**-1070,
        torch.float32: 2.0**-140,
        torch.float16: 2.0**-23,
        torch.bfloat16: 2.0**-130,
    }[dtype]
    w = (t64([[[1.0, 2.0, 0.0]]]) * tiny).to(dtype)
    assert w[0, 0, 0] > 0
    for gamma in [1.0, 3.0, 50.0]:
        out = R.sharpen(w, t64([[gamma]]).to(dtype))
        expected = bh([1 / (1 + 2**gamma), 2**gamma / (1 + 2**gamma), 0.0])
        torch.testing.assert_close(out.double(), expected, **FORWARD[dtype])


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_sharpen_all_zero_row_gives_zeros_not_nan(dtype):
    # invalid input (not a weighting), documented in numerics.SHARPEN_TINY: zeros, no NaN
    w = torch.zeros(1, 2, 4, dtype=dtype)
    w[0, 1, 2] = 1
    w.requires_grad_()
    gamma = t64([[3.0, 3.0]]).to(dtype).requires_grad_()
    out = R.sharpen(w, gamma)
    assert torch.equal(out.double(), torch.stack([torch.zeros(4), one_hot(4, 2)])[None])
    assert _all_finite(*_grads(out, (w, gamma)))


def test_sharpen_1e300_gradient_matches_hand_formula():
    # ∂L/∂w̃_i = γ w̃_i^(γ-1) / Σ w̃^γ · (ḡ_i − ⟨w, ḡ⟩); ∂L/∂γ = Σ_i ḡ_i w_i (log w̃_i − Σ_j w_j
    # log w̃_j) with w_i = 0 terms dropped (docs/math-backward.md#sharpening-backward).
    # Here 1e-300^7 underflows to 0.
    wt = t64([[[0.0, 1e-300, 0.7, 0.3]]]).requires_grad_()
    gamma = t64([[7.0]]).requires_grad_()
    upstream = bh([0.3, -1.0, 2.0, 0.5])
    gw, gg = torch.autograd.grad(R.sharpen(wt, gamma), (wt, gamma), upstream)
    p = [0.0, 0.0, 0.7**7, 0.3**7]
    S = sum(p)
    w = [x / S for x in p]
    ub = [0.3, -1.0, 2.0, 0.5]
    dot = sum(a * b for a, b in zip(w, ub, strict=True))
    vals = [0.0, 1e-300, 0.7, 0.3]
    exp_w = [7 * v**6 / S * (u - dot) for v, u in zip(vals, ub, strict=True)]
    mean_log = sum(w[i] * math.log(vals[i]) for i in (2, 3))
    exp_g = sum(ub[i] * w[i] * (math.log(vals[i]) - mean_log) for i in (2, 3))
    torch.testing.assert_close(gw, bh(exp_w), atol=1e-14, rtol=1e-12)
    assert gg.item() == pytest.approx(exp_g, rel=1e-12)


def test_sharpen_gamma_50_gradient_matches_naive_autograd():
    wt = torch.softmax(torch.randn(2, 3, 7, dtype=F64), -1).requires_grad_()
    gamma = (40 + 10 * torch.rand(2, 3, dtype=F64)).requires_grad_()
    upstream = torch.randn(2, 3, 7, dtype=F64)
    got = torch.autograd.grad(R.sharpen(wt, gamma), (wt, gamma), upstream)
    # plain eq. (9) is safe here: entries >= ~1e-3, so w̃^50 >= 1e-150 in float64
    p = wt.pow(gamma.unsqueeze(-1))
    want = torch.autograd.grad(p / p.sum(-1, keepdim=True), (wt, gamma), upstream)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_sharpen_one_hot_gamma_50(dtype):
    # hand-derived: w = w̃ and both gradients are exactly zero (ḡ_i − ⟨w, ḡ⟩ = 0 on the focus,
    # w̃_i^(γ-1) = 0 elsewhere; every log term is either log 1 = 0 or has w_i = 0)
    wt = bh(one_hot(5, 2)).to(dtype).requires_grad_()
    gamma = t64([[50.0]]).to(dtype).requires_grad_()
    out = R.sharpen(wt, gamma)
    assert torch.equal(out.double(), bh(one_hot(5, 2)))
    gw, gg = _grads(out, (wt, gamma))
    assert torch.equal(gw.double(), torch.zeros(1, 1, 5, dtype=F64))
    assert gg.double().abs().item() == 0


def _write_grads_by_hand(memory, w, erase, add, upstream):
    """docs/math-backward.md#write-backward, several heads:
    ∂L/∂w^h_i = Σ_m M̄'_im (a^h_m − M_im e^h_m Π_{h'≠h}(1 − w^h'_i e^h'_m));
    ∂L/∂e^h_m = −Σ_i M̄'_im M_im w^h_i Π_{h'≠h}(...); products taken over other heads
    (no division by 1 − w e)."""
    B, N, W = memory.shape
    H = w.shape[1]
    gw = torch.zeros(B, H, N, dtype=F64)
    ge = torch.zeros(B, H, W, dtype=F64)
    for b in range(B):
        for h in range(H):
            for i in range(N):
                for m in range(W):
                    others = 1.0
                    for h2 in range(H):
                        if h2 != h:
                            others *= 1 - w[b, h2, i].item() * erase[b, h2, m].item()
                    um, mm = upstream[b, i, m].item(), memory[b, i, m].item()
                    gw[b, h, i] += um * (add[b, h, m].item() - mm * erase[b, h, m].item() * others)
                    ge[b, h, m] -= um * mm * w[b, h, i].item() * others
    return gw, ge


@pytest.mark.parametrize("H", [1, 3])
def test_write_w_times_e_equal_one_gradient(H):
    inp = make_inputs(B=2, H=H, N=4, W=3, seed=5)
    w, erase = inp["w"].clone(), inp["erase"].clone()
    w[:, 0] = one_hot(4, 1)  # head 0 focuses slot 1 ...
    erase[:, 0] = 1.0  # ... with full erase: 1 - w e = 0 exactly
    if H == 3:
        w[:, 2] = one_hot(4, 1)  # a second head also fully erases the same slot
        erase[:, 2, 0] = 1.0
    memory = inp["memory"]
    upstream = torch.randn(2, 4, 3, dtype=F64)
    args = [t.clone().requires_grad_() for t in (memory, w, erase, inp["add"])]
    out = R.write(*args)
    # slot 1 is fully erased, then receives every head's w^h_1 a^h
    expected_row = inp["add"][:, 0].clone()
    for h in range(1, H):
        expected_row += w[:, h, 1:2] * inp["add"][:, h]
    torch.testing.assert_close(out[:, 1].detach(), expected_row, **EXACT)
    grads = torch.autograd.grad(out, args, upstream)
    assert _all_finite(*grads)
    gw, ge = _write_grads_by_hand(memory, w, erase, inp["add"], upstream)
    torch.testing.assert_close(grads[1], gw, atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(grads[2], ge, atol=1e-13, rtol=1e-12)
    # finite differences too (the op is a polynomial in every input, so gradcheck is exact)
    assert torch.autograd.gradcheck(R.write, tuple(args))


@pytest.mark.parametrize("dtype", LOW_DTYPES)
def test_write_w_times_e_equal_one_finite_low_precision(dtype):
    memory = torch.randn(1, 3, 2, dtype=F64).to(dtype).requires_grad_()
    w = bh(one_hot(3, 0)).to(dtype).requires_grad_()
    erase = t64([[[1.0, 1.0]]]).to(dtype).requires_grad_()
    add = t64([[[0.5, -0.5]]]).to(dtype).requires_grad_()
    out = R.write(memory, w, erase, add)
    assert out.dtype == dtype
    assert torch.equal(out[0, 0].double(), t64([0.5, -0.5]))
    assert _all_finite(out, *_grads(out, (memory, w, erase, add)))
