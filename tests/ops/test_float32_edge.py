"""float32 at the ends of its range (issue 16 item 7): memory and key entries from 1e-30 to
1e37, and sharpening rows with subnormal entries, give the float64 answer on every backend.

The expected values are the reference run on float64 copies of the same float32 inputs
(exact), so they are the true answer to ~1e-16; the float32 result must be finite and match
it within the float32 bounds of tests/tolerances.py. Before the scale-safe norms
(docs/math.md#scale-safe-norms) ‖M_i‖² overflowed from entries ~1e19 (uniform weightings, NaN
gradients) and underflowed below ~1e-19; Triton's sharpening gradient computed γ r^(γ-1)/Σ/max
before multiplying by (ḡ - ⟨w, ḡ⟩), which overflows for a subnormal maximum.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from devices import CUDA, DEVICE, backend_cases
from hypothesis import given
from hypothesis import strategies as st
from tolerances import OP_ARGS, forward_tol, grad_tol

from ntm_fast import FastNTM, ReferenceNTM, backends, numerics, reference
from ntm_fast.op_table import draw

F32, F64 = torch.float32, torch.float64


#: The native CUDA kernels (csrc/cuda) where a GPU is present; Triton runs on CUDA tensors when
#: compiled (NTM_FAST_TRITON_COMPILED=1), on CPU tensors under the interpreter.
def _fast(name: str, device: str):
    reason = backends.unavailable_reason(name, torch.device(device))
    return pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=str(reason)))


BACKENDS = [
    pytest.param("reference"),
    _fast("native", "cpu"),
    _fast("triton", DEVICE),
    pytest.param("native-cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device")),
]
TRITON_DEVICE = DEVICE
#: A result below float32's smallest normal number (2^-126 ≈ 1.2e-38) has spacing 2^-149, so
#: it has no relative precision left; such entries may differ from float64 by a few of those.
SUBNORMAL = 16 * torch.finfo(F32).tiny
#: (memory scale, key scale): tiny against tiny (‖k‖‖M‖ << ε), tiny against huge, huge
#: against huge (‖k‖‖M‖ > float32 max), and the mixed cases between; entries ~ scale·N(0, 1).
SCALES = [
    (1e-30, 1e-30), (1e-30, 1.0), (1e-30, 1e30), (1.0, 1e-30), (1e-20, 1e-20),
    (1e20, 1.0), (1.0, 1e20), (1e20, 1e20), (1e37, 1e37), (1e37, 1e-30), (1e37, 1.0),
]  # fmt: skip


pytestmark = [
    # the Triton interpreter (numpy) warns where the plain sums overflow before the rescaled
    # pass replaces them, and on masked lanes
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]


def _where(backend: str) -> tuple[str, str]:
    """(backends.module name, device) of a BACKENDS entry."""
    if backend == "native-cuda":
        return "native", "cuda"
    return backend, TRITON_DEVICE if backend == "triton" else "cpu"


def _skip_unavailable(backend: str) -> None:
    name, device = _where(backend)
    if name != "reference" and backends.unavailable_reason(name, torch.device(device)):
        pytest.skip(f"{backend} unavailable")


def _assert_close(actual, expected, tol: dict, what: str) -> None:
    """Finite, and |a − e| <= atol·max|e| + rtol·|e| + SUBNORMAL elementwise: the atol is
    relative to the tensor's largest entry (softmax and sharpening backwards form
    g_i − Σ_j w_j g_j, so small entries carry the rounding of the largest terms, as in
    tolerances.assert_close_allowing, but without its floor of 1, which would accept
    anything for tensors of size 1e-20)."""
    assert torch.isfinite(actual).all(), f"{what}: not finite: {actual}"
    a, e = actual.double(), expected.double()
    bound = tol["atol"] * e.abs().max() + tol["rtol"] * e.abs() + SUBNORMAL
    bad = ~((a - e).abs() <= bound)
    assert not bad.any(), f"{what}: {a[bad][:4].tolist()} vs float64 {e[bad][:4].tolist()}"


def _run(backend: str, op: str, args: list, upstream):
    name, device = _where(backend)
    leaves = [t.detach().clone().to(device).requires_grad_() for t in args]
    out = getattr(backends.module(name), op)(*leaves)
    grads = torch.autograd.grad(out, leaves, upstream.to(out))
    return out.detach().cpu(), [t.cpu() for t in grads]


def _inputs(op: str, m_scale: float, k_scale: float, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    ranges = dict(beta=(0.0, 5.0), gamma=(1.0, 4.0))
    pool = draw(OP_ARGS[op], 2, 2, 6, 5, 3, generator=g, **ranges)  # float64 on the CPU
    pool["memory"], pool["key"] = m_scale * pool["memory"], k_scale * pool["key"]
    # float32 values (the inputs under test), held exactly in float64 for the expected answer
    return [pool[name].to(F32) for name in OP_ARGS[op]]


def _check_op(backend: str, op: str, args: list, seed: int) -> None:
    up_shape = (args[0].shape[0], *args[-1].shape[1:2], args[0].shape[1])
    if op == "sharpen":
        up_shape = args[0].shape
    upstream = torch.randn(  # cpu: compared on the CPU
        up_shape, generator=torch.Generator().manual_seed(seed)
    )  # cpu: moved by _run
    out, grads = _run(backend, op, args, upstream)
    e_out, e_grads = _run("reference", op, [t.double() for t in args], upstream)
    _assert_close(out, e_out, forward_tol(F32), f"{backend} {op} output")
    for name, a, e in zip(OP_ARGS[op], grads, e_grads, strict=True):
        _assert_close(a, e, grad_tol(F32), f"{backend} {op} d/d{name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["content_address", "address"])
@pytest.mark.parametrize(("m_scale", "k_scale"), SCALES)
def test_content_addressing_at_extreme_scales(backend, op, m_scale, k_scale):
    _skip_unavailable(backend)
    for seed in range(2):
        _check_op(backend, op, _inputs(op, m_scale, k_scale, seed), seed)


@pytest.mark.parametrize("backend", BACKENDS)
@given(seed=st.integers(0, 2**31 - 1))
def test_content_address_rows_of_random_scales(backend, seed):
    """Fresh inputs whose every row and key has its own scale 10^e, e uniform in [-30, 37]:
    rescaled and plain vectors side by side, in one tile."""
    _skip_unavailable(backend)
    g = torch.Generator().manual_seed(seed)
    args = _inputs("content_address", 1.0, 1.0, seed)
    for t in args[:2]:
        e = torch.randint(-30, 38, (*t.shape[:-1], 1), generator=g).double()  # cpu: moved by _run
        t.copy_((t.double() * 10.0**e).float())
    _check_op(backend, "content_address", args, seed)


@pytest.mark.parametrize("op", ["content_address", "address"])
@pytest.mark.parametrize(("m_scale", "k_scale"), [(1e-30, 1e30), (1e37, 1.0), (1.0, 1e20)])
def test_triton_tiled_path_at_extreme_scales(op, m_scale, k_scale):
    """N larger than the tile: the per-tile rescaling decision of kernels/_cosine.py, with
    only some rows out of range (the first rows are scaled down to ordinary values)."""
    _skip_unavailable("triton")
    from ntm_fast._kernels import utils as KU

    args = _inputs(op, m_scale, k_scale, 0)
    args[0][:, :3] /= m_scale
    old = KU.set_max_block_n(2)
    try:
        _check_op("triton", op, args, 0)
    finally:
        KU.set_max_block_n(old)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_rows_and_keys_beside_huge_ones(backend):
    """Zero vectors keep K = 0 and finite gradients next to huge ones (a zero key against rows
    ~1e20, zero rows against a key ~1e20)."""
    _skip_unavailable(backend)
    args = _inputs("content_address", 1e20, 1e20, 0)
    args[0][:, 1] = 0
    args[1][:, 0] = 0
    _check_op(backend, "content_address", args, 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gamma", [1.0, 2.5, 20.0])
@pytest.mark.parametrize("scale", [1e-30, 1e-37, 1e-39, 1e-44])
def test_sharpen_subnormal_rows(backend, gamma, scale):
    """Rows of w̃ ~ scale (subnormal from 1e-39): the output is scale-free and the gradient
    ~ γ (ḡ − ⟨w, ḡ⟩) / max w̃ is representable for ḡ ~ 1e6·scale, though γ / max w̃ alone
    overflows from scale ~1e-37."""
    _skip_unavailable(backend)
    g = torch.Generator().manual_seed(1)
    w = (scale * (0.1 + torch.rand(2, 2, 6, dtype=F64, generator=g))).to(F32)  # cpu: moved by _run
    w[1, 1, 2] = 0.0  # an exact zero beside subnormals
    gam = torch.full((2, 2), gamma, dtype=F32)  # cpu: moved by _run
    noise = torch.randn(2, 2, 6, dtype=F64, generator=g)  # cpu: moved by _run
    upstream = (1e6 * scale * noise).to(F32)
    out, grads = _run(backend, "sharpen", [w, gam], upstream)
    e_out, e_grads = _run("reference", "sharpen", [w.double(), gam.double()], upstream)
    _assert_close(out, e_out, forward_tol(F32), "output")
    for name, a, e in zip(("w", "gamma"), grads, e_grads, strict=True):
        _assert_close(a, e, grad_tol(F32), f"d/d{name}")


@pytest.mark.parametrize(("backend", "device"), backend_cases())
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-step"])
@pytest.mark.parametrize("scale", [1e-30, 1e20, 1e30])
def test_fast_ntm_with_extreme_memory(backend, device, fused, scale):
    """FastNTM in float32 (whole-sequence op or per-step ops) whose initial memory is scaled
    to ``scale`` against ReferenceNTM in float64: every read, write and content lookup sees
    rows whose squared norms are outside float32's range."""
    torch.manual_seed(0)
    ref = ReferenceNTM(3, 2, memory_slots=6, memory_width=4, controller_size=8)
    ref = ref.to(device=device, dtype=F32)
    with torch.no_grad():
        ref.memory_bias.mul_(scale)
    fast = FastNTM.from_reference(ref, backend=backend)
    fast.fused_sequence = fused
    ref64 = copy.deepcopy(ref).to(F64)
    x = torch.rand(5, 2, 3, device=device)
    y = torch.rand(5, 2, 2, device=device)
    results = []
    for model, dt in ((fast, F32), (ref64, F64)):
        logits, _ = model(x.to(dt))
        F.binary_cross_entropy_with_logits(logits, y.to(dt)).backward()
        results.append([logits.detach()] + [p.grad for p in model.parameters()])
    # float32 vs float64 through 5 steps of controller, heads, addressing and memory: the
    # per-op gradient bound holds for the chain too (observed <= 2e-6 of each tensor's max)
    tol = grad_tol(F32)
    names = ["logits"] + [n for n, _ in fast.named_parameters()]
    for name, a, e in zip(names, *results, strict=True):
        _assert_close(a, e, tol, f"{backend} {name}")


def test_norm_range_constants_match_the_headers():
    header = (Path(__file__).parents[2] / "csrc" / "ntm_math.h").read_text()
    lo = float.fromhex(re.search(r"NTM_NORM_SQ_LO = (0x[0-9a-fp+-]+);", header).group(1))
    hi = float.fromhex(re.search(r"NTM_NORM_SQ_HI = (0x[0-9a-fp+-]+);", header).group(1))
    assert (lo, hi) == (numerics.NORM_SQ_LO, numerics.NORM_SQ_HI)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_inverse_pow2_scale(dtype):
    x = torch.tensor(  # cpu: compared on the CPU
        [3e38, 1e20, 1.0, 0.75, 1e-30, 1e-45, 0.0, float("inf"), float("nan")]
    )  # cpu: moved by _run
    x = x.to(dtype)
    inv = numerics.inverse_pow2_scale(x)
    m, _ = torch.frexp(inv)
    assert (m == 0.5).all(), "a power of two"
    scaled = (x * inv)[:4]
    assert ((scaled >= 0.5) & (scaled < 4)).all()
    assert inv[4] * x[4] >= 0.5 and inv[5] * x[5] > 0  # 1e-45 clamps at the normal range
    assert (inv[6:] == 1).all()


def test_reference_content_addressing_compiles():
    """torch.compile of the reference's scale-safe cosine builds and agrees with eager (its
    exponent arithmetic once used frexp/ldexp, whose inductor CPU code did not build)."""
    g = torch.Generator().manual_seed(0)
    memory = torch.randn(2, 5, 3, generator=g) * 1e20  # cpu: inductor's CPU backend
    key = torch.randn(2, 1, 3, generator=g)  # cpu: inductor's CPU backend
    beta = torch.rand(2, 1, generator=g) + 1  # cpu: inductor's CPU backend
    eager = reference.content_address(memory, key, beta)
    compiled = torch.compile(reference.content_address, fullgraph=True)(memory, key, beta)
    torch.testing.assert_close(compiled, eager)
