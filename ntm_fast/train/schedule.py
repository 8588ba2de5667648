"""What each optimiser step of a run is set to: the learning rate (a warm-up, then constant
or a cosine decay), the target-phase penalties, and the run's phases.

Phases: one run whose learning rate, schedule and batch size change at given steps, with the
optimiser's state carried through (a finishing stage, :mod:`.stages`, starts a fresh
optimiser instead). A recipe measured as several commands, each continuing the last with
``--resume`` and other flags, becomes a preset's default this way, so that ``ntm-fast train
TASK`` alone runs it (and ``--resume`` alone continues it after an interruption). The
feedforward N-grams recipe (docs/results/ngrams.md) was three such commands; as phases its
run computes the same steps, bit for bit (tests/train/test_phases.py).

``TrainConfig.phases`` is a list of dicts, each with any of ``lr``, ``lr_schedule`` and
``batch_size``, which replace the run's own settings while the phase lasts, and ``until``,
the step at which it ends (every phase but the last; the last ends at the run's ``steps``).
A cosine schedule within a phase reaches 0 at that phase's end, counted from step 0 as
``--resume --steps UNTIL --lr-schedule cosine`` does. ``[]``: one phase, the run's settings.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .config_checks import LOSS_TERMS
from .errors import UserError

if TYPE_CHECKING:
    from .config import TrainConfig

LR_SCHEDULES = ("constant", "cosine")

#: What a phase may set (all read afresh at every step, like their --resume overrides).
SETTINGS = ("lr", "lr_schedule", "batch_size")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_phases(phases: Any) -> list[dict[str, Any]]:
    """``phases`` checked (module docstring): a :class:`UserError` names the phase, the
    setting, its value and what was expected."""
    if not isinstance(phases, list):
        raise UserError(f"phases: expected a list of dicts, got {type(phases).__name__}")
    previous = 0
    for i, phase in enumerate(phases):
        where = f"phases[{i}]"
        if not isinstance(phase, dict):
            raise UserError(f"{where}: expected a dict, got {type(phase).__name__} {phase!r}")
        unknown = sorted(set(phase) - {"until", *SETTINGS})
        if unknown:
            raise UserError(f"{where}: unknown settings {unknown}; expected 'until' or {SETTINGS}")
        until = phase.get("until")
        if i == len(phases) - 1:
            if until is not None:
                raise UserError(f"{where}: the last phase ends at the run's steps; expected no "
                                f"'until', got {until!r}")  # fmt: skip
        elif not (_is_int(until) and until > previous):
            raise UserError(f"{where}: 'until' should be a step (int) > {previous}, the "
                            f"previous phase's end, got {until!r}")  # fmt: skip
        else:
            previous = until
        lr = phase.get("lr", 1.0)
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < math.inf):
            raise UserError(f"{where}: 'lr' should be a finite number > 0, got {lr!r}")
        if phase.get("lr_schedule", "constant") not in LR_SCHEDULES:
            raise UserError(f"{where}: 'lr_schedule' should be one of {LR_SCHEDULES}, got "
                            f"{phase['lr_schedule']!r}")  # fmt: skip
        size = phase.get("batch_size", 1)
        if not (_is_int(size) and size >= 1):
            raise UserError(f"{where}: 'batch_size' should be an int >= 1, got {size!r}")
    return [dict(phase) for phase in phases]


def at_step(c: TrainConfig, step: int) -> TrainConfig:
    """``c`` as it applies at optimiser step ``step`` (0-based): the phase's settings, and
    as ``steps`` the phase's end (the horizon of its cosine). ``c`` itself without phases."""
    if not c.phases:
        return c
    phase = next((p for p in c.phases if step < p.get("until", math.inf)), c.phases[-1])
    settings = {name: phase[name] for name in SETTINGS if name in phase}
    return replace(c, **settings, steps=phase.get("until", c.steps))


def largest_batch(c: TrainConfig) -> int:
    """The largest batch any step of the run takes (what its memory must fit)."""
    return max([c.batch_size, *(p["batch_size"] for p in c.phases or () if "batch_size" in p)])


def describe_phases(c: TrainConfig) -> str:
    """E.g. "to step 90000 as set; to step 150000: cosine; then to step 180000: batch 16, lr
    1e-05": the phases this run reaches ("" without)."""
    parts, start = [], 0
    for phase in c.phases or ():
        if start >= c.steps:  # a shorter run (--steps) ends before this phase
            break
        what = [f"batch {phase['batch_size']}"] if "batch_size" in phase else []
        what += [f"lr {phase['lr']:g}"] if "lr" in phase else []
        what += [phase["lr_schedule"]] if "lr_schedule" in phase else []
        start = phase.get("until", c.steps)
        end = f"to step {start}" if "until" in phase else f"then to step {c.steps}"
        parts.append(end + (": " + ", ".join(what) if what else " as set"))
    cut = c.phases and start > c.steps
    return "; ".join(parts) + (f" (this run ends at step {c.steps})" if cut else "")


def learning_rate(c: TrainConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based): a linear warm-up from
    lr / warmup_steps to lr over the first ``warmup_steps`` steps, then constant, or for
    ``lr_schedule="cosine"`` a half cosine from lr down to 0 at step ``steps`` (so resuming
    with more ``steps`` stretches the rest of the schedule)."""
    if c.warmup_steps and step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    if c.lr_schedule == "cosine":
        progress = (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps)
        return c.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return c.lr


def penalties(c: TrainConfig, step: int) -> dict[str, float]:
    """Each term of :data:`LOSS_TERMS` at step ``step`` (keyword arguments of
    ``objective.batch_loss``): off before ``penalty_from`` (the network learns the task first)."""
    return {name: getattr(c, name) if step >= c.penalty_from else off
            for name, off in LOSS_TERMS.items()}  # fmt: skip


#: The settings :func:`describe_schedule` names when they are on, and how.
_DESCRIBED = (
    ("warmup_steps", "warm-up {}"), ("clip_norm", "clip |g| {:g}"),
    ("clip_spike", "clip |g| to {:g}x its mean"), ("clip_norm_first", "|g| clipped before g_i"),
    ("weight_decay", "controller weight decay {:g}"),
    ("write_penalty", "target-phase write penalty {:g}"),
    ("read_penalty", "target-phase read-change penalty {:g}"),
    ("gate_penalty", "target-phase write-gate penalty {:g}"),
    ("read_entropy_penalty", "target-phase read-entropy penalty {:g}"),
    ("write_follow_penalty", "target-phase write-follows-read penalty {:g}"),
    ("marker_weight", "end marker weighted {:g}"),
    ("controller_reset", "controller state reset with probability {:g}"),
)  # fmt: skip


def describe_schedule(c: TrainConfig) -> str:
    """E.g. "cosine, warm-up 100, clip |g| 5, clip g_i 10": what shapes the updates."""
    off = {name: LOSS_TERMS.get(name, 0) for name, _ in _DESCRIBED}
    on = [text.format(getattr(c, n)) for n, text in _DESCRIBED if getattr(c, n) != off[n]]
    parts = [c.lr_schedule, *on]
    if c.penalty_from and any(getattr(c, n) != LOSS_TERMS[n] for n in LOSS_TERMS):
        parts.append(f"penalties from step {c.penalty_from}")
    parts.append(f"clip g_i {c.clip:g}")
    if c.phases:
        parts.append(f"phases: {describe_phases(c)}")
    return ", ".join(parts)
