"""Checks of a :class:`ntm_fast.train.config.TrainConfig` that need more than a range: the
regularisers (controller weight decay, the target-phase penalties), the end marker's weight in
the loss and the training memory."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .tasks import TASKS

if TYPE_CHECKING:
    from .config import TrainConfig

#: The target-phase penalties (:mod:`ntm_fast.train.objective`), each a TrainConfig field and
#: an ``ntm-fast train`` flag: X x the memory's change, the change the read heads see, the
#: write heads' interpolation gate, the entropy of the read heads' weightings, and the write
#: weightings' cross-entropy against the step before's read weightings.
PENALTIES = ("write_penalty", "read_penalty", "gate_penalty", "read_entropy_penalty",
             "write_follow_penalty")  # fmt: skip
#: Every term that shapes the loss, with the value that turns it off: the penalties (added)
#: and ``marker_weight`` (how many times the end marker's cross-entropy counts, for a task with
#: one: :attr:`ntm_fast.train.tasks.Task.end_marker`), which leave the logged cost alone, and
#: ``controller_reset`` (the probability of resetting the LSTM controller's state within a
#: sequence: ``objective.reset_forward``; the logged cost is the reset run's). Each is a
#: TrainConfig field, an ``ntm-fast train`` flag and a keyword of ``objective.batch_loss``,
#: and starts at ``penalty_from``.
LOSS_TERMS: dict[str, float] = {**dict.fromkeys(PENALTIES, 0.0), "marker_weight": 1.0,
                                "controller_reset": 0.0}  # fmt: skip


def check_regularisers(c: TrainConfig) -> None:
    """``weight_decay`` (w *= 1 - lr x X must stay in (0, 1]) and the penalties (finite, >= 0;
    all 0 for the LSTM baseline, which has neither an NTM controller nor a memory);
    ``marker_weight`` finite, >= 0, and 1 unless the task has an end marker;
    ``controller_reset`` a probability, and 0 unless the controller is an LSTM."""
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
    x = c.marker_weight
    if not 0 <= x < math.inf:
        raise UserError(f"marker_weight: expected a finite X >= 0 (1: as the paper), got {x}")
    if x != 1 and not TASKS[c.task].end_marker:  # the task is known: preset() checked it
        with_marker = sorted(name for name, t in TASKS.items() if t.end_marker)
        raise UserError(f"marker_weight: expected 1 for task {c.task!r}, which has no end marker "
                        f"(only {', '.join(with_marker)} has one), got {x}")  # fmt: skip
    x = c.controller_reset
    if not 0 <= x <= 1 or (x and c.controller != "lstm"):  # NaN too
        want = f"0 for --controller {c.controller}, which has no LSTM state to reset"
        want = "0 <= P <= 1" if c.controller == "lstm" else want
        raise UserError(f"controller_reset: expected {want}, got {x}")


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
