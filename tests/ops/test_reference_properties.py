"""The reference memory ops in low precision, on non-contiguous inputs, and their properties over
random shapes (hypothesis): weightings are distributions, shifts preserve sums and roll, reads
are linear, a zero write is the identity.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference_cases import ARGS, EXACT, F64, LOW_DTYPES, call, make_inputs, t64
from tolerances import FORWARD

from ntm_fast import reference as R


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
