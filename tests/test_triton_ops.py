"""Triton backend vs the reference: forward and backward of every op, many shapes and dtypes.

Runs the kernels under the Triton interpreter on CPU tensors (tests/conftest.py sets
TRITON_INTERPRET=1); with NTM_FAST_TRITON_COMPILED=1 on a GPU machine it runs them compiled
on CUDA tensors. Outputs are NaN-poisoned (ntm_fast._buffers), so an element a kernel forgets
to write fails the comparison.
"""

from __future__ import annotations

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import torch
from devices import DEVICE, INTERPRET
from hypothesis import given
from hypothesis import strategies as st
from ntm_fast._kernels import utils as KU
from tolerances import OP_ARGS, assert_close_allowing, cosine_allowance, forward_tol, grad_tol

from ntm_fast import _buffers
from ntm_fast import reference as R
from ntm_fast import triton_backend as T

if not INTERPRET and not torch.cuda.is_available():
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)

F64 = torch.float64
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
OPS = ["content_address", "interpolate", "shift_convolve", "sharpen", "address", "read", "write"]


def noncontig(t: torch.Tensor) -> torch.Tensor:
    """The same values as a strided view (last stride 2) of a larger buffer."""
    buf = torch.zeros(*t.shape, 2, dtype=t.dtype, device=t.device)
    buf[..., 0] = t
    return buf[..., 0]


def make_inputs(op, B, H, N, W, S, dtype, *, seed=0, contiguous=True, beta_max=10.0, gamma_max=4.0):
    """Valid random inputs for ``op`` (drawn in float64, then cast), on DEVICE."""
    g = torch.Generator().manual_seed(seed)

    def randn(*s):
        return torch.randn(*s, dtype=F64, generator=g)  # cpu: drawn here, moved to DEVICE below

    def rand(*s):
        return torch.rand(*s, dtype=F64, generator=g)  # cpu: drawn here, moved to DEVICE below

    def weighting():
        return torch.softmax(2 * randn(B, H, N), -1)

    if op == "content_address":
        args = (randn(B, N, W), randn(B, H, W), beta_max * rand(B, H))
    elif op == "interpolate":
        args = (weighting(), weighting(), rand(B, H))
    elif op == "shift_convolve":
        args = (weighting(), torch.softmax(randn(B, H, S), -1))
    elif op == "sharpen":
        args = (weighting() + 0.01, 1 + (gamma_max - 1) * rand(B, H))
    elif op == "address":
        args = (
            randn(B, N, W),
            randn(B, H, W),
            beta_max * rand(B, H),
            rand(B, H),
            torch.softmax(randn(B, H, S), -1),
            1 + (gamma_max - 1) * rand(B, H),
            weighting(),
        )
    elif op == "read":
        args = (randn(B, N, W), weighting())
    elif op == "write":
        args = (randn(B, N, W), rand(B, H, N), torch.sigmoid(randn(B, H, W)), randn(B, H, W))
    else:
        raise ValueError(op)
    args = tuple(a.to(dtype=dtype, device=DEVICE) for a in args)
    if not contiguous:
        args = tuple(noncontig(a) for a in args)
    return args


def assert_close(actual, expected, tol, what, extra=0.0):
    """Elementwise closeness with atol scaled by the size of the expected values (gradients of
    the address pipeline reach |β|·|γ| in size; rounding errors scale with it)."""
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    assert_close_allowing(actual, expected, tol["atol"], tol["rtol"], what, extra)


def check_op(op, args, *, backward=True):
    """Triton forward (and backward for a random upstream gradient) vs the reference."""
    dtype = args[0].dtype
    ref_in = [a.detach().clone().requires_grad_() for a in args]
    tri_in = [a.detach().clone().requires_grad_() for a in args]
    ref = getattr(R, op)(*ref_in)
    out = getattr(T, op)(*tri_in)
    assert_close(out, ref, forward_tol(dtype), f"{op} forward")
    if not backward:
        return
    gen = torch.Generator().manual_seed(1)
    grad = torch.randn(ref.shape, dtype=F64, generator=gen).to(dtype=dtype, device=DEVICE)
    ref_g = torch.autograd.grad(ref, ref_in, grad)
    out_g = torch.autograd.grad(out, tri_in, grad)
    for i, (a, b) in enumerate(zip(out_g, ref_g, strict=True)):
        name = OP_ARGS[op][i]
        extra = cosine_allowance(op, name, args, grad)
        assert_close(a, b, grad_tol(dtype), f"{op} d/d{name}", extra)


# (B, H, N, W, S): N = 1, S = N, odd and power-of-two sizes, one and several heads
SHAPES = [(1, 1, 1, 1, 1), (2, 3, 7, 5, 3), (1, 2, 5, 3, 5), (3, 1, 13, 17, 1), (2, 2, 16, 8, 3)]
# float32 on the general, the one-head/one-shift and the power-of-two shape; half precision on
# the power-of-two one (vectorised half loads), as the value edge cases of
# test_triton_integration: no kernel specialisation beyond these tests' own
FP32_SHAPES = [SHAPES[1], SHAPES[3], SHAPES[4]]
HALF_SHAPE = SHAPES[4]
TILED_SHAPES = [(2, 2, 13, 5, 5), (1, 3, 9, 3, 9), (1, 1, 6, 70, 3)]


def dims_id(d):
    return "B{}H{}N{}W{}S{}".format(*d)


def shape_dtype_cases(*groups):
    """``(dims, dtype)`` cases from ``(shapes, dtypes)`` groups. float64 (exact) runs on every
    shape: the shape logic (masks, ring indices, integers specialised at 1 or 16) does not
    depend on the dtype. float32 and half precision run on a few: their loads, conversions,
    saturation and stores do not depend on the shape, and on a GPU every shape x dtype is one
    more compiled specialisation per kernel (docs/gpu-resources.md)."""
    cases = [(d, t) for shapes, dtypes in groups for d in shapes for t in dtypes]
    return [pytest.param(d, t, id=f"{dims_id(d)}-{t}") for d, t in cases]


@pytest.fixture
def small_blocks():
    """Force tiles of 4 slots so short rows take the multi-tile (tiled) path."""
    old = KU.set_max_block_n(4)
    yield
    KU.set_max_block_n(old)


def test_poisoning_is_on():
    assert _buffers.poison_enabled()


@pytest.mark.parametrize(
    "dims, dtype",
    shape_dtype_cases((SHAPES, [F64]), (FP32_SHAPES, [torch.float32]), ([HALF_SHAPE], DTYPES[2:])),
)
@pytest.mark.parametrize("op", OPS)
def test_matches_reference(op, dims, dtype):
    check_op(op, make_inputs(op, *dims, dtype))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_noncontiguous_inputs(op, dtype):
    # a shape of test_matches_reference: made contiguous, the kernels see nothing new
    args = make_inputs(op, 2, 3, 7, 5, 3, dtype, contiguous=False)
    assert not any(a.is_contiguous() for a in args)
    check_op(op, args)


@pytest.mark.parametrize(
    "dims, dtype",
    shape_dtype_cases((TILED_SHAPES, [F64]), (TILED_SHAPES[:1], [torch.float32, torch.bfloat16])),
)
@pytest.mark.parametrize("op", OPS)
def test_tiled_path_matches_reference(op, dims, dtype, small_blocks):
    """Rows longer than one tile (max tile forced to 4): online softmax over tiles, shift
    neighbours across tile boundaries and around the ring, multi-tile sharpening."""
    assert KU.block_n(dims[2]) < dims[2]
    check_op(op, make_inputs(op, *dims, dtype))


@pytest.mark.parametrize("op", OPS)
def test_backward_is_deterministic(op):
    args = make_inputs(op, 2, 3, 7, 5, 3, torch.float32)  # several heads; a SHAPES shape

    def grads():
        xs = [a.detach().clone().requires_grad_() for a in args]
        out = getattr(T, op)(*xs)
        return torch.autograd.grad(out, xs, torch.ones_like(out))

    for a, b in zip(grads(), grads(), strict=True):
        assert torch.equal(a, b)


@st.composite
def shapes(draw):
    N = draw(st.integers(1, 24))
    k = draw(st.integers(0, (N - 1) // 2))
    return (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        N,
        draw(st.integers(1, 12)),
        2 * k + 1,
    )


@given(
    dims=shapes(),
    op=st.sampled_from(OPS),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    seed=st.integers(0, 2**31 - 1),
    block=st.sampled_from([2, 8, 1024]),
)
def test_hypothesis_shapes(dims, op, dtype, seed, block):
    old = KU.set_max_block_n(block)
    try:
        check_op(op, make_inputs(op, *dims, dtype, seed=seed))
    finally:
        KU.set_max_block_n(old)


LARGE_SHAPES = [(4, 4, 128, 20, 3), (2, 2, 1000, 64, 7), (1, 2, 3000, 33, 5), (1, 1, 65536, 8, 3)]
# float32 (the training dtype) at every size, one half type on the largest single tile: the
# other dtypes' size logic is float32's, and each large tile compiles for seconds on the GPU
# run (docs/gpu-resources.md)
LARGE_CASES = [(d, torch.float32) for d in LARGE_SHAPES] + [(LARGE_SHAPES[1], torch.bfloat16)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "dims, dtype", [pytest.param(d, t, id=f"{dims_id(d)}-{t}") for d, t in LARGE_CASES]
)
@pytest.mark.parametrize("op", OPS)
def test_large_shapes(op, dims, dtype):
    check_op(op, make_inputs(op, *dims, dtype))
