"""The native ops as torch ops: ``torch.library.opcheck`` on every forward and backward op,
``torch.compile(fullgraph=True)`` through the backend functions, and the backend's
``unavailable_reason``. CUDA cases skip where no GPU is present."""

from __future__ import annotations

import pytest
import torch
from devices import CUDA, DEVICE_PARAMS

from ntm_fast import native_backend
from ntm_fast import reference as R

OP_INPUTS = {
    "content_address": 3,
    "interpolate": 3,
    "shift_convolve": 2,
    "sharpen": 2,
    "address": 7,
    "read": 2,
    "write": 4,
}


def _inputs(op, device, dtype=torch.float64, B=2, H=2, N=7, W=3, S=3):
    g = torch.Generator().manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=g)  # cpu: moved below

    def rand(*shape):
        return torch.rand(*shape, dtype=torch.float64, generator=g)  # cpu: moved below

    def weighting():
        return torch.softmax(randn(B, H, N), -1)

    memory, key = randn(B, N, W), randn(B, H, W)
    beta, gate = 5 * rand(B, H), rand(B, H)
    shift, gamma = torch.softmax(randn(B, H, S), -1), 1 + 2 * rand(B, H)
    args = {
        "content_address": (memory, key, beta),
        "interpolate": (weighting(), weighting(), gate),
        "shift_convolve": (weighting(), shift),
        "sharpen": (weighting(), gamma),
        "address": (memory, key, beta, gate, shift, gamma, weighting()),
        "read": (memory, weighting()),
        "write": (memory, weighting(), rand(B, H, W), randn(B, H, W)),
    }[op]
    return [a.to(device=device, dtype=dtype) for a in args]


def _need(device):
    reason = native_backend.unavailable_reason(torch.device(device))
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op", list(OP_INPUTS))
def test_opcheck_forward(op, dtype, device):
    _need(device)
    args = [a.requires_grad_() for a in _inputs(op, device, dtype)]
    torch.library.opcheck(getattr(torch.ops.ntm_fast, f"{op}_fwd").default, args)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("op", list(OP_INPUTS))
def test_opcheck_backward(op, device):
    _need(device)
    args = _inputs(op, device, torch.float32)
    out = getattr(torch.ops.ntm_fast, f"{op}_fwd")(*args)
    torch.library.opcheck(
        getattr(torch.ops.ntm_fast, f"{op}_bwd").default, [torch.randn_like(out), *args]
    )


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_compile_fullgraph(device):
    """One NTM memory step (address, read, write) through torch.compile without graph breaks,
    forward and backward equal to eager. aot_eager runs dynamo, the fake kernels and AOT
    autograd (what fullgraph depends on) without a C++ compiler run per test."""
    _need(device)
    torch._dynamo.reset()
    M, k, b, g, s, y, wp = _inputs("address", device, torch.float32)
    e, a = _inputs("write", device, torch.float32)[2:]

    def step(M, k, b, g, s, y, wp, e, a):
        w = native_backend.address(M, k, b, g, s, y, wp)
        r = native_backend.read(M, w)
        return r, native_backend.write(M, w, e, a)

    args = [t.requires_grad_() for t in (M, k, b, g, s, y, wp, e, a)]
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    r1, m1 = compiled(*args)
    r2, m2 = step(*args)
    torch.testing.assert_close(r1, r2)
    torch.testing.assert_close(m1, m2)
    g1 = torch.autograd.grad((r1.sum(), m1.sum()), args)
    g2 = torch.autograd.grad((r2.sum(), m2.sum()), args)
    for x, z in zip(g1, g2, strict=True):
        torch.testing.assert_close(x, z)
    r3 = R.read(M, R.address(M, k, b, g, s, y, wp))
    torch.testing.assert_close(r1, r3, atol=2e-5, rtol=1e-4)


def test_unavailable_reason():
    _need("cpu")
    from ntm_fast import _C

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
    _need("cpu")
    from ntm_fast import backends

    assert backends.resolve_name("auto", torch.device("cpu")) == "native"
