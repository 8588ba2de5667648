"""FastNTM's fused-sequence path (one autograd node for the whole sequence) against its
per-step path, and activation checkpointing of the native path (chunked recomputation, the
bytes saved per step). Devices and backends: tests/devices.py."""

from __future__ import annotations

import pytest
import torch
from devices import backend_cases
from test_fast_ntm import F64, _pair, _train_step

from ntm_fast import FastNTM, backends

CASES = backend_cases()
FUSED_NODES = ("NativeSequenceBackward", "NTMSequenceBackward")


@pytest.mark.parametrize(("backend", "device"), CASES)
@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_fused_sequence_path_matches_per_step_path_across_chunks(backend, device, controller):
    """Two chunks, the state carried between them: gradients flow through every state
    input and output of the fused path."""
    _, fused = _pair(backend, device, input_size=3, output_size=2, memory_slots=8,
                     memory_width=4, controller_size=6, controller_layers=2, read_heads=2,
                     controller=controller)  # fmt: skip
    stepwise = FastNTM.from_reference(fused, backend=backend)
    stepwise.fused_sequence = False
    x = torch.rand(7, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
    grads = []
    for model in (fused, stepwise):
        x.grad = None
        model.zero_grad()
        a, state = model(x[:4])
        b, state = model(x[4:], state)
        loss = a.sum() + (b * b).sum() + state.memory.sum() + state.read_vectors.sum()
        loss = loss + state.weightings.square().sum() + sum(t.sum() for t in state.controller)
        loss.backward()
        assert (a.grad_fn.name() in FUSED_NODES) == model.fused_sequence
        grads.append([x.grad.clone(), *(p.grad.clone() for p in model.parameters())])
    for g_fused, g_step in zip(*grads, strict=True):
        torch.testing.assert_close(g_fused, g_step, **F64)


def _native_or_skip():
    reason = backends.unavailable_reason("native", torch.device("cpu"))
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_checkpointed_chunks_give_equal_gradients_and_recompute(controller, monkeypatch):
    _native_or_skip()
    _, plain = _pair("native", "cpu", input_size=3, output_size=2, memory_slots=8, memory_width=4,
                     controller_size=6, read_heads=2, controller=controller)  # fmt: skip
    chunked = FastNTM.from_reference(plain, backend="native")
    chunked.checkpoint_steps = 4
    calls = []
    original = FastNTM._apply_sequence

    def counting(self, cfg, x, *state, **options):
        calls.append(x.shape[0])
        return original(self, cfg, x, *state, **options)

    monkeypatch.setattr(FastNTM, "_apply_sequence", counting)
    x = torch.rand(10, 2, 3, dtype=torch.float64, device="cpu")
    y = torch.rand(10, 2, 2, dtype=torch.float64, device="cpu").round()
    p_logits, p_state, p_grads = _train_step(plain, x, y)
    calls.clear()
    c_logits, c_state, c_grads = _train_step(chunked, x, y)
    assert calls == [4, 4, 2, 2, 4, 4], "three chunks forward, then recomputed in backward"
    torch.testing.assert_close(c_logits, p_logits, **F64)
    torch.testing.assert_close(c_state.memory, p_state.memory, **F64)
    for name, g in p_grads.items():
        torch.testing.assert_close(c_grads[name], g, **F64)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_saved_bytes_per_step_matches_what_backward_keeps(controller):
    _native_or_skip()
    model = FastNTM(5, 3, memory_slots=16, memory_width=6, controller_size=7, read_heads=2,
                    write_heads=2, shift_range=2, controller=controller, controller_layers=2,
                    backend="native")  # fmt: skip

    def saved_bytes(T):
        total = []

        def pack(t):
            total.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.rand(T, 3, 5, device="cpu"))
        return sum(total)

    assert saved_bytes(9) - saved_bytes(5) == 4 * model.saved_bytes_per_step(3)


def test_checkpoint_steps_is_validated():
    with pytest.raises(ValueError, match="checkpoint_steps"):
        FastNTM(3, 2, checkpoint_steps=0)
