"""Every fast backend's ops against the reference: forward and backward over many shapes and
dtypes, non-contiguous inputs, random shapes, float64 gradcheck and deterministic backwards.

Backends are tests/devices.py's ``OP_BACKENDS``: the native kernels (csrc/) on the CPU and on
CUDA (skipped without a GPU), Triton under the interpreter on CPU tensors (tests/conftest.py sets
TRITON_INTERPRET=1) or compiled on CUDA (NTM_FAST_TRITON_COMPILED=1 on a GPU machine). Outputs
are NaN-poisoned (conftest sets NTM_FAST_POISON_OUTPUTS=1), so an element a kernel forgets to
write fails the comparison.

Each backend has its own shape lists: the native kernels are cheap to run anywhere; under the
interpreter Triton runs one Python program per (batch, head) and tile, and on the GPU run each
Triton shape x dtype is one more compiled specialisation per kernel (docs/gpu-resources.md).
"""

from __future__ import annotations

import pytest
import torch
from devices import NATIVE_BACKENDS as NATIVE
from devices import OP_BACKENDS
from devices import TRITON_BACKENDS as TRITON
from hypothesis import given
from hypothesis import strategies as st
from op_checks import DTYPES, check_against_reference, inputs, need, op_fn

from ntm_fast.op_table import OP_NAMES as OPS

F64, F32 = torch.float64, torch.float32


def dims_id(d: tuple[int, ...]) -> str:
    return "B{}H{}N{}W{}S{}".format(*d)


def per_backend(native: list, triton: list) -> list:
    """``(backend, device, *case)`` params: each backend of OP_BACKENDS with its own cases
    (``(values, id)`` pairs)."""
    out = []
    for p in OP_BACKENDS:
        for values, cid in native if p.values[0] == "native" else triton:
            out.append(pytest.param(*p.values, *values, id=f"{p.id}-{cid}", marks=p.marks))
    return out


def shape_dtype_cases(*groups) -> list:
    """``((dims, dtype), id)`` cases from ``(shapes, dtypes)`` groups."""
    return [
        ((d, t), f"{dims_id(d)}-{t}") for shapes, dtypes in groups for d in shapes for t in dtypes
    ]


# native: N = 1, S = N, the model's per-step shape at B = 1 and at a B that runs on several
# threads, several heads with odd sizes
NATIVE_SHAPES = [(1, 1, 1, 1, 1), (2, 2, 5, 3, 5), (1, 1, 128, 20, 3), (64, 2, 128, 20, 3),
                 (3, 4, 33, 7, 3)]  # fmt: skip
# Triton (B, H, N, W, S): N = 1, S = N, odd and power-of-two sizes, one and several heads.
# float64 (exact) runs on every shape: the shape logic (masks, ring indices, integers
# specialised at 1 or 16) does not depend on the dtype. float32 on the general, the
# one-head/one-shift and the power-of-two shape; half precision on the power-of-two one
# (vectorised half loads), as the value edge cases of test_backend_numerics: their loads,
# conversions, saturation and stores do not depend on the shape.
SHAPES = [(1, 1, 1, 1, 1), (2, 3, 7, 5, 3), (1, 2, 5, 3, 5), (3, 1, 13, 17, 1), (2, 2, 16, 8, 3)]
FP32_SHAPES = [SHAPES[1], SHAPES[3], SHAPES[4]]
HALF_SHAPE = SHAPES[4]
TILED_SHAPES = [(2, 2, 13, 5, 5), (1, 3, 9, 3, 9), (1, 1, 6, 70, 3)]


@pytest.mark.parametrize(
    ("backend", "device", "dims", "dtype"),
    per_backend(
        native=shape_dtype_cases((NATIVE_SHAPES, [F32, F64])),
        triton=shape_dtype_cases((SHAPES, [F64]), (FP32_SHAPES, [F32]), ([HALF_SHAPE], DTYPES[2:])),
    ),
)
@pytest.mark.parametrize("op", OPS)
def test_matches_reference(op, backend, device, dims, dtype):
    need(backend, device)
    check_against_reference(backend, op, inputs(op, *dims, dtype, device))


@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
@pytest.mark.parametrize(("backend", "device"), OP_BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_noncontiguous_inputs(op, backend, device, dtype):
    need(backend, device)
    # a shape of test_matches_reference's Triton list: made contiguous, its kernels see
    # nothing new
    args = inputs(op, 2, 3, 7, 5, 3, dtype, device, contiguous=False)
    assert not any(a.is_contiguous() for a in args)
    check_against_reference(backend, op, args)


@st.composite
def native_cases(draw):
    N = draw(st.integers(1, 40))
    S = draw(st.sampled_from([s for s in (1, 3, 5, 7, N if N % 2 else N - 1) if 1 <= s <= N]))
    dims = (draw(st.integers(1, 4)), draw(st.integers(1, 3)), N, draw(st.integers(1, 24)), S)
    return dims, draw(st.sampled_from(DTYPES)), draw(st.booleans()), draw(st.integers(0, 2**31))


@pytest.mark.parametrize(("backend", "device"), NATIVE)
@pytest.mark.parametrize("op", OPS)
@given(case=native_cases())
def test_random_shapes_match_reference(op, backend, device, case):
    """Random shapes, dtypes and layouts, per op. Triton's random shapes are
    test_random_shapes_and_tiles' (one op drawn per example: the interpreter's cost)."""
    need(backend, device)
    dims, dtype, noncontig, seed = case
    args = inputs(op, *dims, dtype, device, seed=seed, contiguous=not noncontig)
    check_against_reference(backend, op, args)


@st.composite
def triton_dims(draw):
    N = draw(st.integers(1, 24))
    k = draw(st.integers(0, (N - 1) // 2))
    return (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        N,
        draw(st.integers(1, 12)),
        2 * k + 1,
    )


@pytest.mark.parametrize(("backend", "device"), TRITON)
@given(
    dims=triton_dims(),
    op=st.sampled_from(OPS),
    dtype=st.sampled_from([F64, F32]),
    seed=st.integers(0, 2**31 - 1),
    block=st.sampled_from([2, 8, 1024]),
)
def test_random_shapes_and_tiles(backend, device, dims, op, dtype, seed, block):
    """Random shapes with the largest Triton tile forced to 2, 8 or 1024 slots."""
    need(backend, device)
    from ntm_fast._kernels import utils as KU

    old = KU.set_max_block_n(block)
    try:
        check_against_reference(backend, op, inputs(op, *dims, dtype, device, seed=seed))
    finally:
        KU.set_max_block_n(old)


@pytest.fixture
def small_blocks():
    """Force Triton tiles of 4 slots so short rows take the multi-tile (tiled) path."""
    from ntm_fast._kernels import utils as KU

    old = KU.set_max_block_n(4)
    yield KU
    KU.set_max_block_n(old)


@pytest.mark.parametrize(
    ("backend", "device", "dims", "dtype"),
    per_backend(
        native=[],
        triton=shape_dtype_cases((TILED_SHAPES, [F64]), (TILED_SHAPES[:1], [F32, torch.bfloat16])),
    ),
)
@pytest.mark.parametrize("op", OPS)
def test_tiled_path_matches_reference(op, backend, device, dims, dtype, request):
    """Rows longer than one Triton tile (max tile forced to 4): online softmax over tiles, shift
    neighbours across tile boundaries and around the ring, multi-tile sharpening."""
    need(backend, device)
    KU = request.getfixturevalue("small_blocks")
    assert KU.block_n(dims[2]) < dims[2]
    check_against_reference(backend, op, inputs(op, *dims, dtype, device))


@pytest.mark.parametrize(
    ("backend", "device", "dims"),
    per_backend(
        native=[(((8, 3, 300, 24, 3),), "large")],  # several threads split the reductions
        triton=[(((2, 3, 7, 5, 3),), "small")],  # several heads; a SHAPES shape
    ),
)
@pytest.mark.parametrize("op", OPS)
def test_backward_is_deterministic(op, backend, device, dims):
    need(backend, device)
    args = inputs(op, *dims, F32, device)

    def grads():
        ins = [a.detach().clone().requires_grad_() for a in args]
        out = op_fn(backend, op)(*ins)
        return torch.autograd.grad(out, ins, torch.ones_like(out))

    for a, b in zip(grads(), grads(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("backend", "device", "dims"),
    per_backend(
        native=[((d,), dims_id(d)) for d in [(2, 2, 7, 4, 3), (1, 3, 5, 2, 5), (1, 1, 1, 1, 1)]],
        triton=[(((1, 2, 5, 3, 3),), dims_id((1, 2, 5, 3, 3)))],
    ),
)
@pytest.mark.parametrize("op", OPS)
def test_gradcheck(op, backend, device, dims):
    """float64 finite differences through the forward kernel and the hand-written backward."""
    need(backend, device)
    ranges = dict(beta=(0.0, 5.0), gamma=(1.0, 3.0))
    args = [a.requires_grad_() for a in inputs(op, *dims, F64, device, **ranges)]
    assert torch.autograd.gradcheck(op_fn(backend, op), args, eps=1e-6, atol=1e-7)


LARGE_SHAPES = [(4, 4, 128, 20, 3), (2, 2, 1000, 64, 7), (1, 2, 3000, 33, 5), (1, 1, 65536, 8, 3)]
# float32 (the training dtype) at every size, one half type on the largest single Triton tile:
# the other dtypes' size logic is float32's, and each large tile compiles for seconds on the GPU
# run (docs/gpu-resources.md)
LARGE_CASES = [((d, F32), f"{dims_id(d)}-{F32}") for d in LARGE_SHAPES]
LARGE_CASES += [((LARGE_SHAPES[1], torch.bfloat16), f"{dims_id(LARGE_SHAPES[1])}-{torch.bfloat16}")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "device", "dims", "dtype"), per_backend(native=LARGE_CASES, triton=LARGE_CASES)
)
@pytest.mark.parametrize("op", OPS)
def test_large_shapes(op, backend, device, dims, dtype):
    need(backend, device)
    check_against_reference(backend, op, inputs(op, *dims, dtype, device))
