"""Checks of a :class:`ntm_fast.train.config.TrainConfig` that need more than a range: the
regularisers (controller weight decay, the target-phase penalties) and the training memory."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .errors import UserError

if TYPE_CHECKING:
    from .config import TrainConfig

#: The target-phase penalties (:mod:`ntm_fast.train.objective`), each a TrainConfig field and
#: an ``ntm-fast train`` flag: X x the memory's change, the change the read heads see, and the
#: write heads' interpolation gate.
PENALTIES = ("write_penalty", "read_penalty", "gate_penalty")


def check_regularisers(c: TrainConfig) -> None:
    """``weight_decay`` (w *= 1 - lr x X must stay in (0, 1]) and the penalties (finite, >= 0);
    all 0 for the LSTM baseline, which has neither an NTM controller nor a memory."""
    wd, base = c.weight_decay, c.controller == "baseline"
    if not (0 <= wd and wd * c.lr < 1) or (wd and base):  # NaN too
        want = f"0 <= X < 1 / lr = {1 / c.lr:g}"
        want = "0 (the baseline has no NTM controller)" if base else want
        raise UserError(f"weight_decay: expected {want}, got {wd}")
    for name in PENALTIES:
        x = getattr(c, name)
        if not 0 <= x < math.inf or (x and base):
            want = "0 (the baseline has no memory)" if base else "a finite X >= 0"
            raise UserError(f"{name}: expected {want}, got {x}")


def resolve_train_slots(
    c: TrainConfig, preset_model: dict[str, Any], preset_train: dict[str, Any]
) -> int:
    """``c.train_memory_slots`` checked, or the preset's default (0: the model's own)."""
    model = {**preset_model, **c.model_overrides}
    slots, init = model.get("memory_slots"), model.get("memory_init")
    wanted = c.train_memory_slots
    if wanted is None:  # the preset's default, where the model can run on a smaller memory
        wanted = preset_train.get("train_memory_slots", 0)
        return wanted if slots and init == "shared" and 0 < wanted < slots else 0
    if wanted == 0 or wanted == slots:
        return 0
    if slots is None:
        raise UserError("train_memory_slots: the LSTM baseline has no memory")
    if not 0 < wanted < slots:
        raise UserError(
            f"train_memory_slots: expected 1 to the model's {slots} memory slots, got {wanted}"
        )
    if init != "shared":
        raise UserError(
            f"train_memory_slots {wanted}: needs memory_init='shared' (--memory-init shared), "
            f"the only initial memory that runs with another number of slots; got {init!r}"
        )
    return wanted
