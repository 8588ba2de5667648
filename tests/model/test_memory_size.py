"""A trained NTM run with more memory slots (ntm_fast.memory_size): same start state, same
outputs until a head passes the trained last slot, clear errors where it cannot grow."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ntm_fast import FastNTM, ReferenceNTM
from ntm_fast.memory_size import grow_memory_state

W = 6


def _model(cls, slots: int, controller: str = "lstm", memory_init: str = "shared", seed: int = 0):
    torch.manual_seed(seed)
    return cls(5, 4, memory_slots=slots, memory_width=W, controller=controller,
               memory_init=memory_init, read_heads=2, write_heads=1)  # fmt: skip


def _pin_heads(model, shift_to: int, start_slots: int) -> None:
    """Location-only heads (gate 0) that shift by ``shift_to`` every step, starting on slots
    ``0..start_slots-1`` only, so a head's weight reaches slot N-1 after a known number of steps."""
    layout, S = model.layout, model.layout.shifts
    starts = torch.tensor([0, *layout.sizes[:-1]]).cumsum(0).tolist()
    offsets = dict(zip(layout.groups, starts, strict=True))
    H = layout.heads
    with torch.no_grad():
        rows = slice(offsets["gate"], offsets["gate"] + H)
        model.heads.weight[rows] = 0
        model.heads.bias[rows] = -60.0  # sigmoid: g = 0 to float precision, no content term
        rows = slice(offsets["shift"], offsets["shift"] + H * S)
        model.heads.weight[rows] = 0
        bias = torch.full((H, S), -60.0)
        bias[:, S // 2 + shift_to] = 60.0
        model.heads.bias[rows] = bias.flatten()
        # equal weight on the start slots (sharpening keeps it equal, so none vanishes),
        # exactly zero elsewhere
        model.weighting_logits.fill_(-1e4)
        model.weighting_logits[:, :start_slots] = 0.0


@pytest.mark.parametrize("cls", [ReferenceNTM, FastNTM])
def test_grown_start_state_is_the_trained_one_plus_empty_slots(cls):
    small, big = _model(cls, 12), _model(cls, 30, seed=1)
    with torch.no_grad():
        small.weighting_logits.normal_()
    big.load_state_dict(grow_memory_state(small.state_dict(), 30))
    a, b = small.initial_state(3), big.initial_state(3)
    assert torch.equal(b.memory[:, :12], a.memory)
    assert torch.equal(b.memory[:, 12:], small.memory_bias.expand(3, 18, W))
    torch.testing.assert_close(b.weightings[..., :12], a.weightings, rtol=0, atol=1e-7)
    assert torch.equal(b.weightings[..., 12:], torch.zeros(3, 3, 18))
    assert torch.equal(b.read_vectors, a.read_vectors)


@settings(max_examples=12, deadline=None)
@given(
    slots=st.integers(6, 14),
    extra=st.integers(1, 20),
    start=st.integers(1, 3),
    shift=st.sampled_from([-1, 1]),
    controller=st.sampled_from(["lstm", "feedforward"]),
    fast=st.booleans(),
)
def test_grown_model_matches_until_a_head_passes_the_last_trained_slot(
    slots, extra, start, shift, controller, fast
):
    cls = FastNTM if fast else ReferenceNTM
    small = _model(cls, slots, controller)
    _pin_heads(small, shift, start)
    big = _model(cls, slots + extra, controller)
    big.load_state_dict(grow_memory_state(small.state_dict(), slots + extra))
    # the weight on slots 0..start-1 moving by +1 reaches slot N-1 after slots-start steps
    # and wraps on the next; moving by -1, slot 0's weight wraps at once
    safe = slots - start if shift == 1 else 0
    x = torch.randn(safe + 4, 2, 5)
    out_small, out_big = small(x)[0], big(x)[0]
    # float32 and the same op order on both models: only the softmax over a longer row
    # (exact zeros added) differs; 1e-5 covers its rounding
    torch.testing.assert_close(out_big[:safe], out_small[:safe], rtol=1e-5, atol=1e-5)
    w_small, w_big = (m(x, trace=True)[2].read_weightings for m in (small, big))
    # up to then no weight on the new slots (the gate is sigmoid(-60), not exactly 0)
    assert float(w_big[:safe, ..., slots:].abs().sum()) < 1e-20
    # at the wrap, the weight the trained model moves onto slot 0 (or N-1) lands on the first
    # (or last) new slot of the grown one
    old_slot, new_slot = (0, slots) if shift == 1 else (slots - 1, slots + extra - 1)
    torch.testing.assert_close(w_big[safe, ..., new_slot], w_small[safe, ..., old_slot])
    assert float(w_small[safe, ..., old_slot].min()) > 0


def test_same_size_is_the_same_state():
    m = _model(ReferenceNTM, 10)
    grown = grow_memory_state(m.state_dict(), 10)
    assert all(torch.equal(grown[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize(
    ("memory_init", "slots", "message"),
    [
        ("per_slot", 20, "memory_slots: the model was trained with memory_init='per_slot'"),
        ("shared", 8, "memory_slots: expected at least the 10 slots the model was trained with"),
        ("shared", 0, "memory_slots"),
    ],
)
def test_what_cannot_grow_is_refused_by_name(memory_init, slots, message):
    m = _model(ReferenceNTM, 10, memory_init=memory_init)
    with pytest.raises(ValueError, match=message):
        grow_memory_state(m.state_dict(), slots)


def test_a_state_without_an_ntms_start_state_is_refused():
    with pytest.raises(ValueError, match=r"state_dict: expected an NTM's parameters, missing"):
        grow_memory_state(torch.nn.LSTM(3, 4).state_dict(), 20)
