"""The native backend (csrc/, ntm_fast.native_backend) against the reference: forward and
backward over many shapes and dtypes, float64 gradcheck, the edge-case numerics of
docs/math.md, determinism and validation messages. Every test runs on each device of
``DEVICE_PARAMS`` (the CUDA cases skip where no GPU is present); outputs are NaN-poisoned
(conftest sets NTM_FAST_POISON_OUTPUTS=1), so an element a kernel forgets to write fails.
"""

from __future__ import annotations

import os

import pytest
import torch
from devices import DEVICE_PARAMS
from hypothesis import given
from hypothesis import strategies as st
from tolerances import OP_ARGS, assert_close_allowing, cosine_allowance, forward_tol, grad_tol

from ntm_fast import _buffers, native_backend
from ntm_fast import reference as R
from ntm_fast.numerics import SHARPEN_TINY

NO_NATIVE = os.environ.get("NTM_FAST_NO_NATIVE") == "1"
MAXES = {dt: torch.finfo(dt).max for dt in (torch.float16, torch.bfloat16)}
MAXES.update({torch.float32: float("inf"), torch.float64: float("inf")})
TIGHT = dict(rtol=1e-6, atol=0.0)  # same formula, same order: equal up to one rounding
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
OPS = ["content_address", "interpolate", "shift_convolve", "sharpen", "address", "read", "write"]


def _skip_if_unavailable(device: str) -> None:
    reason = native_backend.unavailable_reason(torch.device(device))
    if reason is not None:
        if device == "cpu" and not NO_NATIVE:
            pytest.fail(f"native CPU backend unavailable: {reason}")
        pytest.skip(reason)


def test_extension_built():
    """The extension must be importable unless the build was explicitly skipped."""
    if NO_NATIVE:
        pytest.skip("NTM_FAST_NO_NATIVE=1: native extension deliberately not built")
    assert native_backend.unavailable_reason(torch.device("cpu")) is None


# ---- inputs -----------------------------------------------------------------------------------


def _noncontig(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous view (every other element of a wider buffer)."""
    buf = torch.zeros((*t.shape, 2), dtype=t.dtype, device=t.device)
    buf[..., 1] = t
    return buf[..., 1]


def make_inputs(
    op: str,
    B: int,
    H: int,
    N: int,
    W: int,
    S: int,
    dtype: torch.dtype,
    device: str,
    *,
    beta_max: float = 20.0,
    gamma_max: float = 10.0,
    noncontig: bool = False,
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, ...]:
    """Valid inputs for ``op`` (drawn in float64, then cast)."""

    def randn(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=gen)  # cpu: moved below

    def rand(*shape):
        return torch.rand(*shape, dtype=torch.float64, generator=gen)  # cpu: moved below

    def weighting():
        return torch.softmax(2 * randn(B, H, N), -1)

    memory = randn(B, N, W)
    key = randn(B, H, W)
    beta = rand(B, H) * beta_max
    gate = rand(B, H)
    shift = torch.softmax(2 * randn(B, H, S), -1)
    gamma = 1 + rand(B, H) * (gamma_max - 1)
    erase = rand(B, H, W)
    add = randn(B, H, W)
    args = {
        "content_address": (memory, key, beta),
        "interpolate": (weighting(), weighting(), gate),
        "shift_convolve": (weighting(), shift),
        "sharpen": (weighting(), gamma),
        "address": (memory, key, beta, gate, shift, gamma, weighting()),
        "read": (memory, weighting()),
        "write": (memory, weighting(), erase, add),
    }[op]
    out = tuple(a.to(device=device, dtype=dtype) for a in args)
    if noncontig:
        out = tuple(_noncontig(a) for a in out)
    return out


def check_against_reference(op, args, *, backward=True):
    native_fn, ref_fn = getattr(native_backend, op), getattr(R, op)
    n_in = [a.detach().requires_grad_(backward) for a in args]
    r_in = [a.detach().requires_grad_(backward) for a in args]
    out = native_fn(*n_in)
    ref = ref_fn(*r_in)
    assert out.dtype == ref.dtype and out.shape == ref.shape and out.device == ref.device
    assert torch.isfinite(out).all(), f"{op}: non-finite output"
    tol = forward_tol(ref.dtype)
    assert_close_allowing(out, ref, tol["atol"], tol["rtol"], f"{op} forward")
    if not backward:
        return
    grad_out = torch.randn(ref.shape, dtype=torch.float64).to(ref)
    grads = torch.autograd.grad(out, n_in, grad_out)
    ref_grads = torch.autograd.grad(ref, r_in, grad_out)
    for i, (g, rg) in enumerate(zip(grads, ref_grads, strict=True)):
        assert g.dtype == rg.dtype and g.shape == rg.shape
        assert torch.isfinite(g).all(), f"{op}: non-finite gradient of input {i}"
        tol, name = grad_tol(rg.dtype), OP_ARGS[op][i]
        extra = cosine_allowance(op, name, args, grad_out)
        assert_close_allowing(g, rg, tol["atol"], tol["rtol"], f"{op} d/d{name}", extra)


# ---- equivalence with the reference -----------------------------------------------------------


@st.composite
def shapes(draw):
    N = draw(st.integers(1, 40))
    S = draw(st.sampled_from([s for s in (1, 3, 5, 7, N if N % 2 else N - 1) if 1 <= s <= N]))
    return dict(
        B=draw(st.integers(1, 4)),
        H=draw(st.integers(1, 3)),
        N=N,
        W=draw(st.integers(1, 24)),
        S=S,
        dtype=draw(st.sampled_from(DTYPES)),
        noncontig=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("op", OPS)
@given(case=shapes())
def test_matches_reference(op, device, case):
    _skip_if_unavailable(device)
    gen = torch.Generator().manual_seed(case.pop("seed"))
    dtype, noncontig = case.pop("dtype"), case.pop("noncontig")
    args = make_inputs(op, **case, dtype=dtype, device=device, noncontig=noncontig, gen=gen)
    check_against_reference(op, args)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    "dims",
    [
        (1, 1, 1, 1, 1),  # N = 1
        (2, 2, 5, 3, 5),  # S = N
        (1, 1, 128, 20, 3),  # the model's per-step shape, B = 1
        (64, 2, 128, 20, 3),  # large enough to run on several threads
        (3, 4, 33, 7, 3),  # several heads, odd sizes
    ],
)
def test_fixed_shapes(op, device, dims):
    _skip_if_unavailable(device)
    B, H, N, W, S = dims
    for dtype in (torch.float32, torch.float64):
        check_against_reference(op, make_inputs(op, B, H, N, W, S, dtype, device))


# ---- float64 gradcheck ------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dims", [(2, 2, 7, 4, 3), (1, 3, 5, 2, 5), (1, 1, 1, 1, 1)])
def test_gradcheck(op, device, dims):
    _skip_if_unavailable(device)
    args = [
        a.requires_grad_()
        for a in make_inputs(op, *dims, torch.float64, device, beta_max=5.0, gamma_max=3.0)
    ]
    assert torch.autograd.gradcheck(getattr(native_backend, op), args, eps=1e-6, atol=1e-7)


# ---- numerics that break NTMs (docs/math.md#numerics) ------------------------------------


def _finite_fwd_bwd(op, args):
    """No NaN/inf in the output or the gradients (gradients beyond a half dtype's range
    saturate at its largest finite value); returns the gradients."""
    ins = [a.detach().requires_grad_() for a in args]
    out = getattr(native_backend, op)(*ins)
    assert torch.isfinite(out).all(), f"{op}: non-finite output"
    grads = torch.autograd.grad(out, ins, torch.ones_like(out))
    for i, g in enumerate(grads):
        assert torch.isfinite(g).all(), f"{op}: non-finite gradient of input {i}"
    return grads


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_norm_key_and_rows(device, dtype):
    _skip_if_unavailable(device)
    for op in ("content_address", "address"):
        args = list(make_inputs(op, 2, 2, 9, 4, 3, dtype, device))
        args[0][0, ::2] = 0  # every other memory row of batch 0
        args[0][1] = 0  # all of batch 1
        args[1][0, 1] = 0  # one key
        # At a zero row the exact dK/dM_i is k / ε (ε = 1e-8): ~1e8 times dK, beyond float16's
        # range: native and reference both saturate it at ±65504 (numerics.saturate).
        _finite_fwd_bwd(op, args)
        check_against_reference(op, args)
        if dtype == torch.float16:  # the comparison above did cover saturated entries
            ins = [a.detach().requires_grad_() for a in args]
            out = R.__dict__[op](*ins)
            grad_out = torch.randn(out.shape, dtype=torch.float64).to(out)
            g_mem = torch.autograd.grad(out, ins[0], grad_out)[0]
            assert (g_mem[0, ::2].abs() == torch.finfo(dtype).max).any()


SATURATE_CASES = [(op, torch.float16) for op in OPS] + [
    # bfloat16's range is float32's: the float32 gradients must reach inf (then saturate), so
    # use inputs and upstream gradients of one sign (no inf - inf = NaN in the reduction).
    ("read", torch.bfloat16),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize(("op", "dtype"), SATURATE_CASES)
def test_half_gradients_saturate(op, dtype, device):
    """Every gradient of every op is stored saturated: an upstream gradient near the dtype's
    maximum makes the float32 gradients exceed its range (or reach float32 inf); they must be
    ±finfo(dtype).max exactly, as in the reference, never inf."""
    _skip_if_unavailable(device)
    big = torch.finfo(dtype).max
    args = list(make_inputs(op, 2, 2, 6, 4, 3, dtype, device))
    # Inputs whose gradient reductions add terms of one sign (|sum| > each term; no inf - inf).
    if op in ("read", "write"):
        args[0] = args[0].abs()  # memory
        if dtype == torch.bfloat16:
            args[1] = torch.ones_like(args[1])  # w on every slot: sums of heads' +big terms
        if op == "write":
            args[2].zero_()  # erase
            args[3] = args[3].abs()  # add
    elif op == "interpolate":
        args = [4 * args[0], torch.zeros_like(args[1]), torch.full_like(args[2], 0.5)]
    elif op == "shift_convolve":
        args = [4 * args[0], 4 * args[1]]
    elif op == "sharpen":
        args[1] = torch.ones_like(args[1])  # γ = 1: dL/dw̃ = (ḡ - <w, ḡ>) / (S max), > ḡ
    n_in = [a.detach().requires_grad_() for a in args]
    r_in = [a.detach().requires_grad_() for a in args]
    out = getattr(native_backend, op)(*n_in)
    grad_out = torch.full_like(out, big)
    if op in ("content_address", "address", "sharpen"):  # a constant grad is orthogonal to them
        gen = torch.Generator().manual_seed(0)
        sign = torch.randint(0, 2, out.shape, generator=gen).to(out) * 2 - 1
        grad_out = grad_out * sign
    grads = torch.autograd.grad(out, n_in, grad_out)
    ref_grads = torch.autograd.grad(getattr(R, op)(*r_in), r_in, grad_out)
    saturated = 0
    for i, (g, rg) in enumerate(zip(grads, ref_grads, strict=True)):
        assert torch.isfinite(rg).all(), f"reference {op}: non-finite gradient of input {i}"
        assert torch.isfinite(g).all(), f"{op}: non-finite gradient of input {i}"
        sat = rg.abs() == big
        assert torch.equal(g[sat], rg[sat]), f"{op}: gradient of input {i} not saturated"
        saturated += int(sat.sum())
    assert saturated > 0, f"{op}: no gradient reached the dtype's range (test inputs too small)"


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_beta_and_gamma(device, dtype):
    _skip_if_unavailable(device)
    for op in ("content_address", "address", "sharpen"):
        args = make_inputs(op, 2, 2, 16, 6, 3, dtype, device)
        if op != "sharpen":
            args[2].fill_(1e4)  # beta
        if op == "address":
            args[5].fill_(50.0)  # gamma
        if op == "sharpen":
            args[1].fill_(50.0)
        _finite_fwd_bwd(op, args)
        if dtype == torch.float64:  # exact enough to compare even at these extremes
            check_against_reference(op, args)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sharpen_underflow(device, dtype):
    """w̃ entries that underflow (or are exactly 0) before sharpening with γ up to 50."""
    _skip_if_unavailable(device)
    w = torch.full((2, 2, 8), 1e-30, dtype=torch.float64)  # cpu: moved below; 0 in float16 too
    w[0, 0, 3] = 1e-3
    w[0, 1, :4] = 0
    w[0, 1, 5] = 1.0
    w[1, 0, 0] = 0.5
    w[1, 1, 2] = 1.0
    gamma = torch.tensor([[50.0, 20.0], [1.0, 50.0]], dtype=torch.float64, device=device)
    args = (w.to(device, dtype), gamma.to(device, dtype))
    _finite_fwd_bwd("sharpen", args)
    check_against_reference("sharpen", args)
    # An all-zero (invalid) weighting sharpens to zeros, not NaN.
    zero = native_backend.sharpen(torch.zeros_like(args[0]), args[1])
    assert torch.equal(zero, torch.zeros_like(zero))
    # Through the fused path: a one-hot previous weighting, gate 0 and a one-hot shift make w̃
    # exactly 0 off the focus; γ = 50.
    a = list(make_inputs("address", 2, 1, 12, 4, 3, dtype, device))
    a[3].zero_()  # gate
    a[4].zero_()
    a[4][..., 2] = 1  # shift +1
    a[5].fill_(50.0)
    a[6].zero_()
    a[6][..., 4] = 1
    _finite_fwd_bwd("address", a)
    out = native_backend.address(*a)
    assert torch.equal(out.argmax(-1), torch.full((2, 1), 5, device=device))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sharpen_all_zero_row_gradient(device, dtype):
    """The reference's definition for an all-zero w̃ row: it divides by 1 (not by a floored
    maximum), the normaliser is clamped at SHARPEN_TINY (no gradient through the clamp), so
    dL/dw̃_i = ḡ_i / SHARPEN_TINY = 1e30 ḡ_i for γ = 1 (and 0 for γ > 1, where 0^(γ-1) = 0);
    float16 saturates it. Native must give exactly that, not 1/TINY² = 1e60 (inf in float32)."""
    _skip_if_unavailable(device)
    w = torch.zeros(2, 2, 6, dtype=dtype, device=device)
    w[1, 1, 2] = 0.5  # one valid row beside the zero rows
    gamma = torch.tensor([[1.0, 3.0], [1.0, 2.0]], dtype=dtype, device=device)
    grad_out = torch.randn(2, 2, 6, dtype=torch.float64).to(w)
    n_in = [w.clone().requires_grad_(), gamma.clone().requires_grad_()]
    r_in = [w.clone().requires_grad_(), gamma.clone().requires_grad_()]
    out = native_backend.sharpen(*n_in)
    ref = R.sharpen(*r_in)
    assert torch.equal(out, ref)
    grads = torch.autograd.grad(out, n_in, grad_out)
    ref_grads = torch.autograd.grad(ref, r_in, grad_out)
    expected = (grad_out.double() / SHARPEN_TINY).clamp(-MAXES[dtype], MAXES[dtype])
    torch.testing.assert_close(grads[0][0, 0].double(), expected[0, 0].to(w).double(), **TIGHT)
    assert torch.equal(grads[0][0, 1], torch.zeros_like(grads[0][0, 1]))  # γ = 3
    for g, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg, **TIGHT)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sharpen_tiny_maximum_is_scale_free(device, dtype):
    """A row whose maximum is positive but below SHARPEN_TINY is divided by that maximum (the
    reference's scale-free form): with γ = 10 the output still sums to 1."""
    _skip_if_unavailable(device)
    w = torch.tensor([[[1e-35, 5e-36, 2e-36, 0.0]]], dtype=dtype, device=device)
    gamma = torch.tensor([[10.0]], dtype=dtype, device=device)
    out = native_backend.sharpen(w, gamma)
    torch.testing.assert_close(out.sum(), torch.ones((), dtype=dtype, device=device))
    check_against_reference("sharpen", (w, gamma))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_write_exact_erase_many_heads(device):
    """w·e = 1 exactly for some heads: the backward must not divide by (1 - w e)."""
    _skip_if_unavailable(device)
    args = list(make_inputs("write", 2, 4, 6, 5, 1, torch.float64, device))
    args[1][:, :2] = 0
    args[1][:, :2, 3] = 1  # two heads focus fully on slot 3
    args[2][:, :2] = 1  # and erase it completely
    _finite_fwd_bwd("write", args)
    check_against_reference("write", args)


# ---- determinism, poisoning, constants, validation -------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("op", ["address", "content_address", "read", "write"])
def test_backward_deterministic(op, device):
    _skip_if_unavailable(device)
    args = make_inputs(op, 8, 3, 300, 24, 3, torch.float32, device)

    def grads():
        ins = [a.detach().requires_grad_() for a in args]
        out = getattr(native_backend, op)(*ins)
        return torch.autograd.grad(out, ins, torch.ones_like(out))

    for a, b in zip(grads(), grads(), strict=True):
        assert torch.equal(a, b)


def test_poison_mirrors_buffers_switch():
    _skip_if_unavailable("cpu")
    from ntm_fast import _C

    assert _buffers.poison_enabled(), "conftest should have turned poisoning on"
    args = make_inputs("read", 1, 1, 4, 3, 1, torch.float32, "cpu")
    try:
        _buffers.set_poison(False)
        native_backend.read(*args)
        assert not _C.poison_enabled()
        _buffers.set_poison(True)
        native_backend.read(*args)
        assert _C.poison_enabled()
    finally:
        _buffers.set_poison(True)
        native_backend.read(*args)


def test_constants_match_numerics():
    import re
    from pathlib import Path

    from ntm_fast.numerics import COSINE_EPS, SHARPEN_TINY

    header = (Path(__file__).parents[1] / "csrc" / "ntm_math.h").read_text()
    eps = float(re.search(r"NTM_COSINE_EPS = ([0-9.e+-]+);", header).group(1))
    tiny = float(re.search(r"NTM_SHARPEN_TINY = ([0-9.e+-]+);", header).group(1))
    assert (eps, tiny) == (COSINE_EPS, SHARPEN_TINY)
    hexes = dict(re.findall(r"NTM_(FLOAT16|BFLOAT16)_MAX = (0x[0-9a-fp.+-]+)f;", header))
    assert float.fromhex(hexes["FLOAT16"]) == torch.finfo(torch.float16).max
    assert float.fromhex(hexes["BFLOAT16"]) == torch.finfo(torch.bfloat16).max


BAD_CASES = [
    ("content_address", lambda a: (a[0][0], a[1], a[2])),  # memory rank 2
    ("content_address", lambda a: (a[0], a[1][:, :, :-1], a[2])),  # key width
    ("content_address", lambda a: (a[0], a[1], a[2].double())),  # beta dtype
    ("content_address", lambda a: (a[0], a[1], a[2].long())),  # non-float beta
    ("interpolate", lambda a: (a[0], a[1][:, :, :-1], a[2])),
    ("shift_convolve", lambda a: (a[0], a[1].new_ones(*a[1].shape[:2], 2))),  # even S
    ("shift_convolve", lambda a: ([1.0], a[1])),  # not a tensor
    ("sharpen", lambda a: (a[0], a[1][:, :1])),
    ("address", lambda a: (*a[:4], a[4].repeat(1, 1, 9)[..., :21], *a[5:])),  # S > N
    ("address", lambda a: (*a[:6], a[6].half())),
    ("read", lambda a: (a[0], a[1][:1])),
    ("write", lambda a: (a[0], a[1], a[2][..., :-1], a[3])),
    ("write", lambda a: (a[0], a[1], a[2], a[3].to("meta"))),  # device mismatch
]


@pytest.mark.parametrize(("op", "mutate"), BAD_CASES)
def test_validation_messages_match_reference(op, mutate):
    _skip_if_unavailable("cpu")
    bad = mutate(make_inputs(op, 2, 2, 9, 4, 3, torch.float32, "cpu"))
    with pytest.raises((TypeError, ValueError)) as ref_err:
        getattr(R, op)(*bad)
    with pytest.raises(type(ref_err.value)) as nat_err:
        getattr(native_backend, op)(*bad)
    assert str(nat_err.value) == str(ref_err.value)


def test_cpp_checks_name_the_argument():
    """The ops check their arguments themselves when called directly (no Python validation)."""
    _skip_if_unavailable("cpu")
    m, k, b = make_inputs("content_address", 2, 2, 9, 4, 3, torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"key: expected shape \(B, H, W\)"):
        torch.ops.ntm_fast.content_address_fwd(m, k[..., :-1], b)
    with pytest.raises(TypeError, match=r"beta: expected dtype Float \(the dtype of memory\)"):
        torch.ops.ntm_fast.content_address_fwd(m, k, b.double())
    w, s = make_inputs("shift_convolve", 2, 2, 5, 4, 3, torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"shift: expected an odd number of shifts"):
        torch.ops.ntm_fast.shift_convolve_fwd(w, w.new_ones(2, 2, 7))
    with pytest.raises(ValueError, match=r"grad: expected shape"):
        torch.ops.ntm_fast.shift_convolve_bwd(w.new_ones(2, 2, 4), w, s)
