"""Tests of the plain-PyTorch reference memory ops (ntm_fast.reference), the contract every fast
backend is compared against.

Expected values come from three independent sources, never from running the code under test:

* hand-computed examples taken from the paper's own descriptions (Graves et al. 2014, 3.1-3.3);
* naive implementations below, written with explicit Python loops straight from eqs. (2)-(9);
* hand-derived gradients (docs/math-backward.md) and finite differences
  (torch.autograd.gradcheck).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tolerances import FORWARD

from ntm_fast import reference as R
from ntm_fast.numerics import COSINE_EPS

F64 = torch.float64
ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
LOW_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
EXACT = dict(atol=1e-15, rtol=1e-14)  # float64, a few roundings at most


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


# ---------------------------------------------------------------------------------------------
# Naive implementations: explicit loops over b, h, i, j, straight from the paper's equations.
# ---------------------------------------------------------------------------------------------


def naive_cosine(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    nu = math.sqrt(sum(a * a for a in u))
    nv = math.sqrt(sum(b * b for b in v))
    return dot / (nu * nv + COSINE_EPS)


def naive_content_address(memory, key, beta):
    B, N, _ = memory.shape
    H = key.shape[1]
    out = torch.zeros(B, H, N, dtype=F64)
    for b in range(B):
        for h in range(H):
            k = key[b, h].tolist()
            z = [beta[b, h].item() * naive_cosine(k, memory[b, i].tolist()) for i in range(N)]
            top = max(z)
            e = [math.exp(zi - top) for zi in z]
            total = sum(e)
            for i in range(N):
                out[b, h, i] = e[i] / total
    return out


def naive_interpolate(wc, wp, g):
    B, H, N = wc.shape
    out = torch.zeros(B, H, N, dtype=F64)
    for b in range(B):
        for h in range(H):
            gg = g[b, h].item()
            for i in range(N):
                out[b, h, i] = gg * wc[b, h, i].item() + (1 - gg) * wp[b, h, i].item()
    return out


def naive_shift(w, s):
    """Eq. (8): w̃(i) = Σ_j w(j) s(i - j), index arithmetic modulo N; s indexed by offset."""
    B, H, N = w.shape
    k = (s.shape[-1] - 1) // 2
    out = torch.zeros(B, H, N, dtype=F64)
    for b in range(B):
        for h in range(H):
            for i in range(N):
                acc = 0.0
                for j in range(N):
                    for d in range(-k, k + 1):
                        if (i - j - d) % N == 0:
                            acc += w[b, h, j].item() * s[b, h, d + k].item()
                out[b, h, i] = acc
    return out


def naive_sharpen(w, gamma):
    B, H, N = w.shape
    out = torch.zeros(B, H, N, dtype=F64)
    for b in range(B):
        for h in range(H):
            p = [w[b, h, i].item() ** gamma[b, h].item() for i in range(N)]
            total = sum(p)
            for i in range(N):
                out[b, h, i] = p[i] / total
    return out


def naive_read(memory, w):
    B, N, W = memory.shape
    H = w.shape[1]
    out = torch.zeros(B, H, W, dtype=F64)
    for b in range(B):
        for h in range(H):
            for m in range(W):
                out[b, h, m] = sum(w[b, h, i].item() * memory[b, i, m].item() for i in range(N))
    return out


def naive_write(memory, w, erase, add):
    """Eqs. (3)-(4): every head's erase, then every head's add."""
    B, N, W = memory.shape
    H = w.shape[1]
    out = torch.zeros(B, N, W, dtype=F64)
    for b in range(B):
        for i in range(N):
            for m in range(W):
                v = memory[b, i, m].item()
                for h in range(H):
                    v *= 1 - w[b, h, i].item() * erase[b, h, m].item()
                for h in range(H):
                    v += w[b, h, i].item() * add[b, h, m].item()
                out[b, i, m] = v
    return out


# ---------------------------------------------------------------------------------------------
# Random valid inputs
# ---------------------------------------------------------------------------------------------


def make_inputs(B=2, H=2, N=5, W=3, S=3, seed=0, dtype=F64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rn(*shape):
        return torch.randn(*shape, generator=g, dtype=F64)

    def ru(*shape):
        return torch.rand(*shape, generator=g, dtype=F64)

    d = dict(
        memory=rn(B, N, W),
        key=rn(B, H, W),
        beta=0.1 + 5 * ru(B, H),  # β > 0
        gate=0.05 + 0.9 * ru(B, H),  # g in (0, 1)
        shift=torch.softmax(rn(B, H, S), -1),
        gamma=1 + 3 * ru(B, H),  # γ >= 1
        w_prev=torch.softmax(rn(B, H, N), -1),
        w_content=torch.softmax(rn(B, H, N), -1),
        w=torch.softmax(rn(B, H, N), -1),
        erase=0.02 + 0.96 * ru(B, H, W),  # e in (0, 1)
        add=rn(B, H, W),
        x=(S // 2) * (2 * ru(B, H) - 1),  # uniform-shift scalar in [-k, k]
    )
    return {k: v.to(dtype) for k, v in d.items()}


ARGS = {
    "content_address": ("memory", "key", "beta"),
    "interpolate": ("w_content", "w_prev", "gate"),
    "shift_convolve": ("w", "shift"),
    "sharpen": ("w", "gamma"),
    "address": ("memory", "key", "beta", "gate", "shift", "gamma", "w_prev"),
    "read": ("memory", "w"),
    "write": ("memory", "w", "erase", "add"),
}


def call(op: str, inp: dict[str, torch.Tensor]) -> torch.Tensor:
    return getattr(R, op)(*(inp[a] for a in ARGS[op]))


def one_hot(n: int, i: int) -> torch.Tensor:
    v = torch.zeros(n, dtype=F64)
    v[i] = 1
    return v


def bh(v) -> torch.Tensor:
    """A single weighting / vector as (B=1, H=1, n)."""
    return torch.as_tensor(v, dtype=F64).reshape(1, 1, -1)


def offset_shift(S: int, d: int) -> torch.Tensor:
    """A one-hot shift distribution on offset d (index d + k)."""
    return bh(one_hot(S, d + (S - 1) // 2))


# ---------------------------------------------------------------------------------------------
# Hand-computed examples from the paper
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("N,S", [(3, 3), (5, 3), (5, 5), (8, 3), (8, 5)])
def test_shift_plus_one_moves_focus_to_next_slot_with_wraparound(N, S):
    for j in range(N):
        out = R.shift_convolve(bh(one_hot(N, j)), offset_shift(S, +1))
        assert torch.equal(out, bh(one_hot(N, (j + 1) % N)))  # slot N-1 wraps to 0
        out = R.shift_convolve(bh(one_hot(N, j)), offset_shift(S, -1))
        assert torch.equal(out, bh(one_hot(N, (j - 1) % N)))  # slot 0 wraps to N-1


def test_shift_larger_offsets_and_s_equals_n():
    # S = N = 5 (offsets -2..2): +2 moves slot 4 to slot 1, -2 moves slot 0 to slot 3.
    assert torch.equal(R.shift_convolve(bh(one_hot(5, 4)), offset_shift(5, 2)), bh(one_hot(5, 1)))
    assert torch.equal(R.shift_convolve(bh(one_hot(5, 0)), offset_shift(5, -2)), bh(one_hot(5, 3)))
    # S = N = 3: the full rotation group; offset 0 is the identity.
    w = bh([0.2, 0.5, 0.3])
    assert torch.equal(R.shift_convolve(w, offset_shift(3, 1)), bh([0.3, 0.2, 0.5]))
    assert torch.equal(R.shift_convolve(w, offset_shift(3, 0)), w)


def test_shift_blur_010_080_010():
    # "shifts of -1, 0 and 1 given weights of 0.1, 0.8 and 0.1 ... slightly blurred over three
    # points": a point at slot 2 of 6 becomes 0.1 at slots 1 and 3 and 0.8 at slot 2.
    out = R.shift_convolve(bh(one_hot(6, 2)), bh([0.1, 0.8, 0.1]))
    assert torch.equal(out, bh([0, 0.1, 0.8, 0.1, 0, 0]))
    # asymmetric weights show the direction: offset -1 gets 0.2, offset +1 gets 0.1
    out = R.shift_convolve(bh(one_hot(6, 0)), bh([0.2, 0.7, 0.1]))
    assert torch.equal(out, bh([0.7, 0.1, 0, 0, 0, 0.2]))


def test_shift_s1_is_identity():
    w = make_inputs(B=3, H=2, N=7)["w"]
    assert torch.equal(R.shift_convolve(w, torch.ones(3, 2, 1, dtype=F64)), w)


def test_uniform_shift_paper_example():
    # x = 6.7 -> s(6) = 0.3, s(7) = 0.7, the rest zero. S = 15 allows offsets -7..7.
    s = R.uniform_shift(t64([[6.7]]), 15)
    assert s.shape == (1, 1, 15)
    expected = torch.zeros(15, dtype=F64)
    expected[6 + 7], expected[7 + 7] = 0.3, 0.7
    torch.testing.assert_close(s, bh(expected), **EXACT)
    # negative and integer offsets: x = -1.25 -> s(-2) = 0.25, s(-1) = 0.75; x = 1 -> s(1) = 1
    s = R.uniform_shift(t64([[-1.25, 1.0]]), 5)
    torch.testing.assert_close(s[0, 0], t64([0.25, 0.75, 0, 0, 0]), **EXACT)
    torch.testing.assert_close(s[0, 1], t64([0, 0, 0, 1, 0]), **EXACT)


def test_uniform_shift_drives_a_jump():
    # x = 2.5 over N = 8: a focus at slot 1 splits evenly onto slots 3 and 4.
    w = R.shift_convolve(bh(one_hot(8, 1)), R.uniform_shift(t64([[2.5]]), 7))
    torch.testing.assert_close(w, bh([0, 0, 0, 0.5, 0.5, 0, 0, 0]), **EXACT)


def test_erase_full_zeroes_slot_and_add_writes_row():
    memory = t64([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    w = bh(one_hot(3, 1))
    # w = e = 1 on slot 1 zeroes it; other slots untouched (w = 0 there)
    out = R.write(memory, w, t64([[[1.0, 1.0]]]), t64([[[0.0, 0.0]]]))
    assert torch.equal(out, t64([[[1.0, 2.0], [0.0, 0.0], [5.0, 6.0]]]))
    # erase then add: slot 1 now holds exactly a
    out = R.write(memory, w, t64([[[1.0, 1.0]]]), t64([[[-7.0, 0.5]]]))
    assert torch.equal(out, t64([[[1.0, 2.0], [-7.0, 0.5], [5.0, 6.0]]]))
    # no erase: a is added onto the row
    out = R.write(memory, w, t64([[[0.0, 0.0]]]), t64([[[-7.0, 0.5]]]))
    assert torch.equal(out, t64([[[1.0, 2.0], [-4.0, 4.5], [5.0, 6.0]]]))
    # partial erase element-wise: e = (0.5, 0) halves column 0 only
    out = R.write(memory, w, t64([[[0.5, 0.0]]]), t64([[[0.0, 0.0]]]))
    assert torch.equal(out, t64([[[1.0, 2.0], [1.5, 4.0], [5.0, 6.0]]]))
    assert torch.equal(memory, t64([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]]))  # input untouched


def test_two_write_heads_erase_all_before_add():
    # Head 0 adds a0 to slot 0 (no erase); head 1 fully erases slot 0 (adds nothing).
    # Erase-all-then-add-all: M'_0 = M_0 * 0 + a0 = a0. Head-by-head would give (M_0 + a0) * 0
    # = 0 in this head order and a0 in the other, so the result would depend on head order.
    memory = t64([[[3.0, -1.0], [2.0, 2.0]]])
    w = t64([[[1.0, 0.0], [1.0, 0.0]]])
    erase = t64([[[0.0, 0.0], [1.0, 1.0]]])
    add = t64([[[5.0, 6.0], [0.0, 0.0]]])
    expected = t64([[[5.0, 6.0], [2.0, 2.0]]])
    assert torch.equal(R.write(memory, w, erase, add), expected)
    assert torch.equal(R.write(memory, w.flip(1), erase.flip(1), add.flip(1)), expected)
    # both heads add to the same slot: the adds sum
    both = R.write(memory, w, torch.zeros_like(erase), t64([[[1.0, 0.0], [0.0, 1.0]]]))
    assert torch.equal(both, t64([[[4.0, 0.0], [2.0, 2.0]]]))


def test_interpolate_gate_one_and_zero():
    inp = make_inputs()
    wc, wp = inp["w_content"], inp["w_prev"]
    assert torch.equal(R.interpolate(wc, wp, torch.ones(2, 2, dtype=F64)), wc)
    assert torch.equal(R.interpolate(wc, wp, torch.zeros(2, 2, dtype=F64)), wp)
    # g = 0.25 between two one-hots
    out = R.interpolate(bh(one_hot(4, 0)), bh(one_hot(4, 3)), t64([[0.25]]))
    assert torch.equal(out, bh([0.25, 0, 0, 0.75]))


def test_sharpen_gamma_one_is_identity():
    w = make_inputs(B=3, H=2, N=9)["w"]
    torch.testing.assert_close(R.sharpen(w, torch.ones(3, 2, dtype=F64)), w, **EXACT)


def test_sharpen_hand_values_and_large_gamma_approaches_argmax():
    w = bh([0.1, 0.5, 0.4])
    # γ = 2: (0.01, 0.25, 0.16) / 0.42
    torch.testing.assert_close(R.sharpen(w, t64([[2.0]])), bh([1 / 42, 25 / 42, 16 / 42]))
    prev = 0.0
    for gamma in [1.0, 3.0, 10.0, 30.0, 50.0]:
        out = R.sharpen(w, t64([[gamma]]))
        assert out[0, 0, 1] > prev  # monotone towards the argmax
        prev = out[0, 0, 1].item()
    # γ = 50: the runner-up keeps 0.8^50 / (1 + 0.8^50 + 0.2^50) ≈ 1.4e-5
    assert 1 - prev == pytest.approx(0.8**50 / (1 + 0.8**50 + 0.2**50), rel=1e-9)


def test_content_address_picks_most_similar_row_and_beta_zero_is_uniform():
    memory = t64([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 0.0]]])
    key = t64([[[0.1, 0.2, 3.0], [-1.0, -1.0, 0.0]]])  # head 1 is anti-parallel to row 3
    w = R.content_address(memory, key, t64([[50.0, 50.0]]))
    assert w[0, 0].argmax() == 2
    assert w[0, 0, 2] > 0.99
    assert w[0, 1].argmin() == 3  # cosine -1 is the least similar
    assert torch.equal(R.content_address(memory, key, torch.zeros(1, 2, dtype=F64)), 0.25 + 0 * w)
    # scale invariance of the cosine: scaling a row changes its similarity only through ε
    scaled = memory.clone()
    scaled[0, 2] *= 1e3
    torch.testing.assert_close(
        R.content_address(scaled, key, t64([[3.0, 3.0]])),
        R.content_address(memory, key, t64([[3.0, 3.0]])),
        atol=1e-8,
        rtol=0,
    )


def test_cosine_of_key_with_itself_is_one():
    # Row 0 = key, row 1 orthogonal to key (K = 0): w0 / w1 = exp(β K_0) so K_0 = log(w0/w1)/β.
    key = t64([[[0.6, -1.2, 2.0]]])
    memory = t64([[[0.6, -1.2, 2.0], [2.0, 1.0, 0.0]]])
    beta = 1.5
    w = R.content_address(memory, key, t64([[beta]]))
    k0 = math.log(w[0, 0, 0].item() / w[0, 0, 1].item()) / beta
    n2 = 0.6**2 + 1.2**2 + 2.0**2
    assert k0 == pytest.approx(n2 / (n2 + COSINE_EPS), abs=1e-13)
    assert abs(k0 - 1) < 1e-8


def test_read_one_hot_returns_row():
    memory = make_inputs(B=2, N=6, W=4)["memory"]
    w = torch.stack([torch.stack([one_hot(6, 3), one_hot(6, 0)])] * 2)  # (2, 2, 6)
    r = R.read(memory, w)
    assert torch.equal(r[:, 0], memory[:, 3])
    assert torch.equal(r[:, 1], memory[:, 0])
    # convex combination: 0.25 row 1 + 0.75 row 5
    w2 = bh([0, 0.25, 0, 0, 0, 0.75]).expand(2, 1, 6)
    torch.testing.assert_close(R.read(memory, w2)[:, 0], 0.25 * memory[:, 1] + 0.75 * memory[:, 5])


def test_address_pure_location_mode():
    # Paper mode three: g = 0 ignores content, shift +1 rotates w_prev, γ sharpens nothing away.
    inp = make_inputs(B=1, H=1, N=6, W=3)
    out = R.address(
        inp["memory"],
        inp["key"],
        inp["beta"],
        torch.zeros(1, 1, dtype=F64),
        offset_shift(3, 1),
        torch.ones(1, 1, dtype=F64),
        bh(one_hot(6, 5)),
    )
    assert torch.equal(out, bh(one_hot(6, 0)))


# ---------------------------------------------------------------------------------------------
# Against the naive loop implementations (random inputs, small sizes)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "B,H,N,W,S", [(2, 3, 5, 4, 3), (1, 1, 1, 1, 1), (3, 2, 7, 2, 7), (1, 2, 9, 3, 5)]
)
def test_ops_match_naive_loops(seed, B, H, N, W, S):
    inp = make_inputs(B, H, N, W, S, seed=seed)
    m, k, b, g, s, y, wp = (inp[a] for a in ARGS["address"])
    tol = dict(atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(R.content_address(m, k, b), naive_content_address(m, k, b), **tol)
    torch.testing.assert_close(
        R.interpolate(inp["w_content"], wp, g), naive_interpolate(inp["w_content"], wp, g), **tol
    )
    torch.testing.assert_close(R.shift_convolve(inp["w"], s), naive_shift(inp["w"], s), **tol)
    torch.testing.assert_close(R.sharpen(inp["w"], y), naive_sharpen(inp["w"], y), **tol)
    torch.testing.assert_close(R.read(m, inp["w"]), naive_read(m, inp["w"]), **tol)
    torch.testing.assert_close(
        R.write(m, inp["w"], inp["erase"], inp["add"]),
        naive_write(m, inp["w"], inp["erase"], inp["add"]),
        **tol,
    )
    naive_addr = naive_sharpen(
        naive_shift(naive_interpolate(naive_content_address(m, k, b), wp, g), s), y
    )
    torch.testing.assert_close(R.address(m, k, b, g, s, y, wp), naive_addr, **tol)
    composed = R.sharpen(R.shift_convolve(R.interpolate(R.content_address(m, k, b), wp, g), s), y)
    torch.testing.assert_close(R.address(m, k, b, g, s, y, wp), composed, **EXACT)


def test_write_three_heads_matches_naive():
    inp = make_inputs(B=2, H=3, N=6, W=4, seed=3)
    args = [inp[a] for a in ARGS["write"]]
    torch.testing.assert_close(R.write(*args), naive_write(*args), atol=1e-13, rtol=1e-12)


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


# Low precision: outputs keep the input dtype and match float64 evaluated on the same (rounded)
# inputs within tolerances.FORWARD. The reference computes in float32 and rounds once to the
# output dtype, so the error is <= 0.5 ulp of the output plus float32 rounding (amplified by
# β <= 5.1 and γ <= 4 here) -- well inside FORWARD, which allows ~2 ulp of the output dtype
# (float16 2e-3, bfloat16 1.6e-2) and 2e-5/1e-4 for float32.
@pytest.mark.parametrize("dtype", LOW_DTYPES)
@pytest.mark.parametrize("op", list(ARGS))
def test_low_precision_close_to_float64(op, dtype):
    inp = make_inputs(B=2, H=3, N=11, W=6, S=5, seed=2, dtype=dtype)
    out = call(op, inp)
    assert out.dtype == dtype
    expected = call(op, {k: v.double() for k, v in inp.items()})
    torch.testing.assert_close(out.double(), expected, **FORWARD[dtype])


@pytest.mark.parametrize("dtype", LOW_DTYPES)
def test_low_precision_uniform_shift(dtype):
    x = t64([[0.25, -1.5]]).to(dtype)
    s = R.uniform_shift(x, 5)
    assert s.dtype == dtype
    torch.testing.assert_close(s.double(), t64([[[0, 0, 0.75, 0.25, 0], [0.5, 0.5, 0, 0, 0]]]))


# ---------------------------------------------------------------------------------------------
# Non-contiguous inputs
# ---------------------------------------------------------------------------------------------


def _strided(t: torch.Tensor, how: int) -> torch.Tensor:
    """A non-contiguous view holding the same values as t."""
    if how == 0:  # every other element of a bigger buffer
        big = torch.zeros(*t.shape, 2, dtype=t.dtype)
        big[..., 0] = t
        view = big[..., 0]
    else:  # transposed storage
        view = t.transpose(0, -1).contiguous().transpose(0, -1)
    assert not view.is_contiguous()
    assert torch.equal(view, t)
    return view


@pytest.mark.parametrize("how", [0, 1])
@pytest.mark.parametrize("op", list(ARGS))
def test_non_contiguous_inputs(op, how):
    inp = make_inputs(B=2, H=3, N=7, W=4, S=3, seed=4)
    strided = {k: _strided(v, how) for k, v in inp.items()}
    torch.testing.assert_close(call(op, strided), call(op, inp), **EXACT)


def test_non_contiguous_sliced_weighting_and_expanded_beta():
    inp = make_inputs(B=2, H=2, N=6, W=3, seed=9)
    big = torch.softmax(torch.randn(2, 4, 6, dtype=F64), -1)
    w = big[:, ::2]  # sliced view along heads
    beta = t64([2.0, 3.0]).expand(2, 2)  # zero stride
    torch.testing.assert_close(R.read(inp["memory"], w), R.read(inp["memory"], w.contiguous()))
    torch.testing.assert_close(
        R.content_address(inp["memory"], inp["key"], beta),
        R.content_address(inp["memory"], inp["key"], beta.contiguous()),
        **EXACT,
    )
    torch.testing.assert_close(
        R.uniform_shift(_strided(inp["x"], 0), 3), R.uniform_shift(inp["x"], 3), **EXACT
    )


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------


@st.composite
def shapes(draw):
    B = draw(st.integers(1, 4))
    H = draw(st.integers(1, 3))
    N = draw(st.integers(1, 17))
    W = draw(st.integers(1, 9))
    S = 2 * draw(st.integers(0, (N - 1) // 2)) + 1
    seed = draw(st.integers(0, 2**31 - 1))
    return B, H, N, W, S, seed


def _is_distribution(w: torch.Tensor):
    assert torch.isfinite(w).all()
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1], dtype=w.dtype), **EXACT)


@given(shapes())
def test_property_weightings_are_distributions(shape):
    B, H, N, W, S, seed = shape
    inp = make_inputs(B, H, N, W, S, seed=seed)
    for op in ("content_address", "interpolate", "shift_convolve", "sharpen", "address"):
        out = call(op, inp)
        assert out.shape == (B, H, N)
        _is_distribution(out)


@given(shapes())
def test_property_shift_preserves_sum(shape):
    B, H, N, W, S, seed = shape
    inp = make_inputs(B, H, N, W, S, seed=seed)
    w = inp["w"] * (1 + 10 * inp["beta"].unsqueeze(-1))  # not normalised
    torch.testing.assert_close(R.shift_convolve(w, inp["shift"]).sum(-1), w.sum(-1), **EXACT)


@given(shapes(), st.floats(-3, 3), st.floats(-3, 3))
def test_property_read_is_linear_in_memory(shape, a, b):
    B, H, N, W, S, seed = shape
    inp = make_inputs(B, H, N, W, S, seed=seed)
    m1 = inp["memory"]
    m2 = make_inputs(B, H, N, W, S, seed=seed + 1)["memory"]
    w = inp["w"]
    torch.testing.assert_close(
        R.read(a * m1 + b * m2, w), a * R.read(m1, w) + b * R.read(m2, w), atol=1e-13, rtol=1e-12
    )


@given(shapes())
def test_property_write_zero_erase_zero_add_is_identity(shape):
    B, H, N, W, S, seed = shape
    inp = make_inputs(B, H, N, W, S, seed=seed)
    zeros = torch.zeros(B, H, W, dtype=F64)
    assert torch.equal(R.write(inp["memory"], inp["w"], zeros, zeros), inp["memory"])


@given(shapes())
def test_property_shift_by_uniform_integer_is_roll(shape):
    B, H, N, W, S, seed = shape
    inp = make_inputs(B, H, N, W, S, seed=seed)
    k = (S - 1) // 2
    d = seed % (2 * k + 1) - k
    s = R.uniform_shift(torch.full((B, H), float(d), dtype=F64), S)
    assert torch.equal(R.shift_convolve(inp["w"], s), torch.roll(inp["w"], d, dims=-1))
