"""The fast backends' ops as torch ops: ``torch.library.opcheck`` on every forward and backward
op (the fakes and autograd registrations derived from ntm_fast.op_table), ``torch.compile(
fullgraph=True)`` through the backend functions, and each backend's ``unavailable_reason``."""

from __future__ import annotations

import pytest
import torch
from devices import CUDA, DEVICE, OP_BACKENDS
from devices import TRITON_BACKENDS as TRITON
from op_checks import NO_NATIVE, inputs, need, op_fn
from test_backend_ops import per_backend
from tolerances import assert_close_allowing, forward_tol, grad_tol

from ntm_fast import _buffers, backends, ops
from ntm_fast import reference as R
from ntm_fast.backends import BackendUnavailableError
from ntm_fast.op_table import OP_NAMES as OPS

F64, F32 = torch.float64, torch.float32
NAMESPACES = {"native": "ntm_fast", "triton": "ntm_fast_triton"}
# per backend: a small odd shape; Triton's float32 only (each dtype is one more compiled
# specialisation on the GPU run)
DIMS = {"native": (2, 2, 7, 3, 3), "triton": (2, 2, 5, 3, 3)}
OPCHECK = per_backend(native=[((dt,), str(dt)) for dt in (F32, F64)], triton=[((F32,), str(F32))])


def _kernel(backend: str, name: str):
    return getattr(getattr(torch.ops, NAMESPACES[backend]), name).default


@pytest.mark.parametrize(("backend", "device", "dtype"), OPCHECK)
@pytest.mark.parametrize("op", OPS)
def test_opcheck_forward(op, backend, device, dtype):
    need(backend, device)
    args = [a.requires_grad_() for a in inputs(op, *DIMS[backend], dtype, device)]
    torch.library.opcheck(_kernel(backend, f"{op}_fwd"), args)


@pytest.mark.parametrize(("backend", "device"), OP_BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_opcheck_backward(op, backend, device):
    need(backend, device)
    args = inputs(op, *DIMS[backend], F32, device)
    out = _kernel(backend, f"{op}_fwd")(*args)
    torch.library.opcheck(_kernel(backend, f"{op}_bwd"), [torch.randn_like(out), *args])


@pytest.mark.parametrize(
    ("backend", "device", "dims", "dtype"),
    per_backend(native=[(((2, 2, 7, 3, 3), F32), "f32")], triton=[(((2, 2, 7, 5, 3), F64), "f64")]),
)
def test_compile_fullgraph(backend, device, dims, dtype):
    """One NTM memory step (address, read, write) through torch.compile without graph breaks,
    forward and backward equal to eager. aot_eager runs dynamo, the fake kernels and AOT
    autograd (what fullgraph depends on) without a C++ compiler run per test."""
    need(backend, device)
    torch._dynamo.reset()
    M, k, b, g, s, y, wp = inputs("address", *dims, dtype, device)
    e, a = inputs("write", *dims, dtype, device, seed=1)[2:]

    def step(mod, M, k, b, g, s, y, wp, e, a):
        w = mod.address(M, k, b, g, s, y, wp)
        r = mod.read(M, w)
        return r, mod.write(M, w, e, a)

    fast = backends.module(backend)
    args = [t.requires_grad_() for t in (M, k, b, g, s, y, wp, e, a)]
    compiled = torch.compile(lambda *t: step(fast, *t), fullgraph=True, backend="aot_eager")
    r1, m1 = compiled(*args)
    r2, m2 = step(fast, *args)
    torch.testing.assert_close(r1, r2)
    torch.testing.assert_close(m1, m2)
    g1 = torch.autograd.grad((r1.sum(), m1.sum()), args)
    g2 = torch.autograd.grad((r2.sum(), m2.sum()), args)
    for x, z in zip(g1, g2, strict=True):
        torch.testing.assert_close(x, z)
    r3, m3 = step(R, *args)
    torch.testing.assert_close(r1, r3, **forward_tol(dtype))
    torch.testing.assert_close(m1, m3, **forward_tol(dtype))
    g3 = torch.autograd.grad((r3.sum(), m3.sum()), args)
    tol = grad_tol(dtype)
    for i, (x, z) in enumerate(zip(g1, g3, strict=True)):
        assert_close_allowing(x, z, tol["atol"], tol["rtol"], f"compiled step, gradient {i}")


@pytest.mark.parametrize(("backend", "device"), OP_BACKENDS)
def test_dispatch_through_ops(backend, device):
    need(backend, device)
    args = inputs("address", 1, 2, 6, 4, 3, F32, device)
    out = ops.address(*args, backend=backend)
    torch.testing.assert_close(out, R.address(*args), **forward_tol(F32))


def test_outputs_are_poisoned():
    """conftest turns NaN poisoning of the fast backends' outputs on (an element a kernel
    forgets to write is NaN and fails the comparisons)."""
    assert _buffers.poison_enabled()


# ---- availability -------------------------------------------------------------------------------


def test_native_extension_built():
    """The extension must be importable unless the build was explicitly skipped."""
    if NO_NATIVE:
        pytest.skip("NTM_FAST_NO_NATIVE=1: native extension deliberately not built")
    from ntm_fast import native_backend

    assert native_backend.unavailable_reason(torch.device("cpu")) is None


def test_native_unavailable_reason():
    need("native", "cpu")
    from ntm_fast import _C, native_backend

    assert native_backend.unavailable_reason(torch.device("cpu")) is None
    assert "cpu and cuda devices only" in native_backend.unavailable_reason(torch.device("meta"))
    cuda_reason = native_backend.unavailable_reason(torch.device("cuda"))
    if not _C.built_with_cuda():
        assert "built without CUDA" in cuda_reason
        assert "pip install --no-build-isolation" in cuda_reason
        assert "TORCH_CUDA_ARCH_LIST" in cuda_reason
    elif CUDA:
        assert cuda_reason is None


def test_backends_auto_picks_native_on_cpu():
    need("native", "cpu")
    assert backends.resolve_name("auto", torch.device("cpu")) == "native"


@pytest.mark.skipif(DEVICE != "cpu", reason="checks the CPU-without-interpreter error")
@pytest.mark.parametrize(("backend", "device"), TRITON)
@pytest.mark.parametrize("op", OPS)
def test_triton_cpu_without_interpreter_raises(op, backend, device, monkeypatch):
    need(backend, device)
    from ntm_fast import triton_backend as T

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    reason = T.unavailable_reason(torch.device("cpu"))
    assert reason is not None and "CUDA" in reason and "TRITON_INTERPRET=1" in reason
    args = inputs(op, 1, 1, 3, 2, 1, F32, device)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        op_fn(backend, op)(*args)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        _kernel(backend, f"{op}_fwd")(*args)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        getattr(ops, op)(*args, backend="triton")


@pytest.mark.parametrize(("backend", "device"), TRITON)
def test_missing_triton_says_how_to_install(backend, device, monkeypatch):
    need(backend, device)
    from ntm_fast import triton_backend as T

    monkeypatch.setattr(T, "_IMPORT_ERROR", "triton is not importable (x); pip install triton")
    reason = T.unavailable_reason("cpu")
    assert reason is not None and "pip install triton" in reason
    with pytest.raises(BackendUnavailableError, match="pip install triton"):
        T.read(*inputs("read", 1, 1, 3, 2, 1, F32, device))
