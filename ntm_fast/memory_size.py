"""Run a trained NTM with more memory slots than it was trained with.

No parameter of an NTM depends on the number of slots N except those of its start state: the
initial memory (``memory_bias``) and the initial weightings (``softmax(weighting_logits)``).
With ``memory_init="shared"`` the initial memory is one learned row repeated in every slot,
so it extends to any N; the initial weightings extend exactly by giving the new slots zero
weight. The grown model starts in the trained model's state, with slots ``N..N'-1`` holding
the shared row, like every slot the trained model has not written yet. It differs where the
slot count shows: a head moving past slot ``N-1`` reaches slot ``N`` instead of wrapping to
``0``, and content addressing also weighs the new (unwritten) slots.

Why it is useful: a head that keeps moving during a long output (e.g. repeat copy's write
head, docs/results/repeat-copy.md) wraps around N = 128 slots and overwrites what it stored;
evaluating the same weights with more slots tells that failure apart from others.
A per-slot initial memory has no learned value for the new slots, so it is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .model_checks import positive

# Added to the smallest trained logit for a new slot: exp(-1e4) is exactly 0 in float32 and
# float64, so the new slots get zero initial weight and the trained slots' weights are unchanged.
_NEW_SLOT_OFFSET = 1.0e4


def grow_memory_state(state_dict: Mapping[str, Tensor], memory_slots: int) -> dict[str, Tensor]:
    """The ``state_dict`` of a ``ReferenceNTM``/``FastNTM`` trained with N slots, for the same
    model built with ``memory_slots`` >= N (same weights; see the module docstring).

    Raises ``ValueError`` naming the argument when the model's initial memory is per slot
    (``memory_init="per_slot"``), when ``memory_slots`` < N, or when the state lacks the
    initial-state parameters."""
    slots = positive("memory_slots", memory_slots)
    missing = [k for k in ("memory_bias", "weighting_logits") if k not in state_dict]
    if missing:
        raise ValueError(f"state_dict: expected an NTM's parameters, missing {missing}")
    logits, memory = state_dict["weighting_logits"], state_dict["memory_bias"]
    trained = logits.shape[-1]
    if memory.shape[0] != 1:
        raise ValueError(
            f"memory_slots: the model was trained with memory_init='per_slot' (initial memory "
            f"{tuple(memory.shape)}, one learned row per slot), which has no initial value for "
            f"new slots; only memory_init='shared' (one row, shape (1, W)) can grow"
        )
    if slots < trained:
        raise ValueError(
            f"memory_slots: expected at least the {trained} slots the model was trained with "
            f"(fewer would change its learned initial weightings), got {slots}"
        )
    grown = dict(state_dict)
    if slots > trained:
        fill = float(logits.min()) - _NEW_SLOT_OFFSET
        new = logits.new_full((*logits.shape[:-1], slots - trained), fill)
        grown["weighting_logits"] = torch.cat([logits, new], dim=-1)
    return grown
