"""Double backward (issue 16 item 5): every hand-written backward refuses create_graph=True
with a clear error at the call, on every path; the reference supports it."""

from __future__ import annotations

import pytest
import torch
from devices import backend_cases

from ntm_fast import FastNTM, ReferenceNTM, ops

CFG = dict(memory_slots=8, memory_width=4, controller_size=6)
CASES = backend_cases()  # each fast backend on each device (tests/devices.py)


def _model(backend, device, fused):
    torch.manual_seed(0)
    return FastNTM(3, 2, backend=backend, fused_sequence=fused, **CFG).to(device).double()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-step"])
@pytest.mark.parametrize(("backend", "device"), CASES)
@pytest.mark.parametrize("lengths", [False, True], ids=["", "lengths"])
def test_fast_paths_refuse_double_backward(backend, device, fused, lengths):
    model = _model(backend, device, fused)
    x = torch.rand(5, 2, 3, dtype=torch.float64, device=device, requires_grad=True)
    kw = {"lengths": torch.tensor([5, 3], device=device)} if lengths else {}
    out, _ = model(x, **kw)
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.autograd.grad(out.square().sum(), x, create_graph=True)
    # an ordinary backward through the same graph still works
    out, _ = model(x, **kw)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(("backend", "device"), CASES)
def test_ops_refuse_double_backward(backend, device):
    memory = torch.rand(2, 6, 4, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.softmax(torch.rand(2, 1, 6, dtype=torch.float64, device=device), -1)
    r = ops.read(memory, w, backend=backend)
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.autograd.grad(r.sum(), memory, create_graph=True)


def test_reference_supports_double_backward():
    torch.manual_seed(0)
    model = ReferenceNTM(3, 2, **CFG).double()
    x = torch.rand(5, 2, 3, dtype=torch.float64, device="cpu", requires_grad=True)
    out, _ = model(x)
    (g,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    assert g.requires_grad  # a gradient penalty can backpropagate through it
    g.square().sum().backward()
    assert model.heads.weight.grad is not None
