"""Tests of the reference memory ops (ntm_fast.reference) against values that do not come from
running the code under test: hand-computed examples taken from the paper's own descriptions
(Graves et al. 2014, 3.1-3.3) and the naive loop implementations of reference_cases.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference_cases import (
    ARGS,
    EXACT,
    F64,
    bh,
    make_inputs,
    naive_content_address,
    naive_interpolate,
    naive_read,
    naive_sharpen,
    naive_shift,
    naive_write,
    offset_shift,
    one_hot,
    t64,
)

from ntm_fast import reference as R
from ntm_fast.numerics import COSINE_EPS

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
