"""What a training run is defined by: :class:`TrainConfig` (each step's schedule:
:mod:`.schedule`), and which settings a resumed run may change.

A resumed run continues under the configuration stored in its checkpoint. Given again with
``--resume``, settings that do not change what is computed (how long to train, how often to
log and checkpoint, threads, device, backend, progress bar, figures) are applied; so are the
learning rate, its schedule, the clipping, the batch size and the phases (``--no-phases``),
which are read afresh at every step (the run's first line says what changed). The model,
task, seed and optimiser cannot change: given with a value different from the run's, they
are refused with a message naming the flags (:func:`apply_resume_overrides`), instead of
being silently ignored.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from .config_checks import LOSS_TERMS, check_regularisers, resolve_train_slots
from .errors import UserError
from .presets import CONTROLLERS, preset
from .schedule import LR_SCHEDULES, check_phases


@dataclass
class TrainConfig:
    """Everything a run is defined by (stored in its checkpoint as a plain dict).

    ``None`` for batch_size / lr / optimizer / steps means the preset's CPU default.
    ``train_memory_slots``: train the NTM on a memory of that many slots, fewer than the
    model's (it is evaluated with its own; docs/training-memory.md); 0 means the model's.
    ``init_from``: a checkpoint whose model (configuration and weights) the run starts from
    (:mod:`ntm_fast.train.warm_start`). ``finish_steps``: the steps of the preset's finishing
    stage after this run (:mod:`ntm_fast.train.stages`; 0: none). ``phases``: where lr, its
    schedule and the batch size change within the run (:mod:`ntm_fast.train.schedule`; []: none).
    ``model_overrides`` / ``task_overrides`` change preset sizes (e.g. a tiny test model);
    ``task_overrides`` go over the preset's own task settings (its ``task_args``).
    """

    task: str = "copy"
    controller: str = "lstm"
    steps: int | None = None
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    seed: int = 0
    device: str = "cpu"
    backend: str = "auto"
    out: str | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    threads: int | None = 1
    stop_cost: float | None = None
    clip: float = 10.0
    clip_norm: float | None = None
    clip_spike: float | None = None
    clip_norm_first: bool | None = None
    weight_decay: float | None = None
    write_penalty: float | None = None
    penalty_from: int | None = None
    read_penalty: float | None = None
    gate_penalty: float | None = None
    read_entropy_penalty: float | None = None
    write_follow_penalty: float | None = None
    marker_weight: float | None = None
    controller_reset: float | None = None
    warmup_steps: int | None = None
    lr_schedule: str | None = None
    train_memory_slots: int | None = None
    init_from: str | None = None
    finish_steps: int | None = None
    phases: list[dict[str, Any]] | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    task_overrides: dict[str, Any] = field(default_factory=dict)
    plots: bool = True
    progress: bool = True

    def resolved(self) -> TrainConfig:
        """A copy with the preset's defaults filled in and every value checked."""
        try:
            p = preset(self.task, self.controller)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        c = TrainConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        c.batch_size = c.batch_size or p.train["batch_size"]
        c.lr = c.lr or p.train["lr"]
        c.optimizer = c.optimizer or p.train["optimizer"]
        c.steps = c.steps if c.steps is not None else p.train.get("steps", 100_000)
        for name, off in {"clip_norm": 0.0, "clip_spike": 0.0, "weight_decay": 0.0,
                          **LOSS_TERMS}.items():  # fmt: skip
            if getattr(c, name) is None:
                setattr(c, name, p.train.get(name, off))
        if c.clip_norm_first is None:
            c.clip_norm_first = bool(p.train.get("clip_norm_first", False))
        for name in ("warmup_steps", "penalty_from"):
            if getattr(c, name) is None:
                setattr(c, name, p.train.get(name, 0))
        c.lr_schedule = c.lr_schedule or p.train.get("lr_schedule", "constant")
        c.task_overrides = {**p.train.get("task_args", {}), **c.task_overrides}
        other = {k for ctrl in CONTROLLERS for k in preset(c.task, ctrl).model} - set(p.model)
        foreign = sorted({flag_name(k) for k in c.model_overrides if k in other})
        if foreign:  # e.g. --memory-slots for the baseline, --hidden-size for an NTM
            raise UserError(f"{', '.join(foreign)}: not a setting of --controller {c.controller}")
        c.train_memory_slots = resolve_train_slots(c, p.model, p.train)
        if c.finish_steps is None:
            c.finish_steps = p.train.get("finish", {}).get("steps", 0)
        c.phases = check_phases(p.train.get("phases", []) if c.phases is None else c.phases)
        if c.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"lr_schedule: expected one of {LR_SCHEDULES}, got {c.lr_schedule!r}")
        if c.optimizer not in ("rmsprop", "adam"):
            raise UserError(f"optimizer: expected 'rmsprop' or 'adam', got {c.optimizer!r}")
        if c.penalty_from < 0:
            raise UserError(f"penalty_from: expected a step >= 0, got {c.penalty_from}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(c, name) < 1:
                raise UserError(f"{name}: expected >= 1, got {getattr(c, name)}")
        if c.finish_steps < 0:
            raise UserError(
                f"finish_steps: expected >= 0 (0: no finishing stage), got {c.finish_steps}"
            )
        if not c.lr > 0:
            raise UserError(f"lr: expected > 0, got {c.lr}")
        if c.clip_norm < 0 or c.warmup_steps < 0:
            bad = "clip_norm" if c.clip_norm < 0 else "warmup_steps"
            raise UserError(f"{bad}: expected >= 0 (0 turns it off), got {getattr(c, bad)}")
        if c.clip_norm_first and not c.clip_norm:
            raise UserError("clip_norm_first: clips the global norm first, so it needs "
                            f"--clip-norm > 0 (got clip_norm={c.clip_norm})")  # fmt: skip
        check_regularisers(c)
        if c.clip_spike != 0 and not c.clip_spike > 1:
            raise UserError(f"clip_spike: expected > 1 (0 turns it off), got {c.clip_spike}")
        if c.minutes is not None and not c.minutes > 0:
            raise UserError(f"minutes: expected > 0, got {c.minutes}")
        if c.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("device: cuda requested but torch.cuda.is_available() is False")
        return c


# -- a stored configuration: checked, since a checkpoint may have been edited by hand ----------
_NUMBER = (int, float)
_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {  # field: (types, None allowed)
    "task": ((str,), False), "controller": ((str,), False), "steps": ((int,), True),
    "minutes": (_NUMBER, True), "batch_size": ((int,), True), "lr": (_NUMBER, True),
    "optimizer": ((str,), True), "seed": ((int,), False), "device": ((str,), False),
    "backend": ((str,), False), "out": ((str,), True), "checkpoint_every": ((int,), False),
    "log_every": ((int,), False), "threads": ((int,), True), "stop_cost": (_NUMBER, True),
    "clip": (_NUMBER, False), "clip_norm": (_NUMBER, True), "clip_spike": (_NUMBER, True),
    "clip_norm_first": ((bool,), True),
    "weight_decay": (_NUMBER, True), **{name: (_NUMBER, True) for name in LOSS_TERMS},
    "penalty_from": ((int,), True),
    "warmup_steps": ((int,), True), "train_memory_slots": ((int,), True),
    "init_from": ((str,), True), "finish_steps": ((int,), True), "lr_schedule": ((str,), True),
    "phases": ((list,), True),
    "model_overrides": ((dict,), False), "task_overrides": ((dict,), False),
    "plots": ((bool,), False), "progress": ((bool,), False),
}  # fmt: skip


def config_from_dict(data: dict[str, Any], where: str) -> TrainConfig:
    """The :class:`TrainConfig` stored as ``data``; a missing, unknown or mistyped field is a
    ``ValueError`` naming ``where`` (the checkpoint) and the field."""
    if "write_penalty_from" in data:  # its name before it started every penalty (session 22)
        data = {**data, "penalty_from": data["write_penalty_from"]}
        del data["write_penalty_from"]
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: config has unknown fields {unknown}")
    for name in ("task", "controller"):
        if name not in data:
            raise ValueError(f"{where}: config lacks {name!r}")
    for name, value in data.items():
        types, optional = _TYPES[name]
        ok = (value is None and optional) or (
            isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        )
        if not ok:
            want = " or ".join(t.__name__ for t in types) + (" or None" if optional else "")
            raise ValueError(
                f"{where}: config field {name!r} should be {want}, got {type(value).__name__} "
                f"{value!r}"
            )
    # Runs from before these fields existed: own memory, no finishing stage, decay, penalty or
    # end-marker weight.
    old = {"train_memory_slots": 0, "finish_steps": 0, "weight_decay": 0.0,
           "penalty_from": 0, "phases": [], "clip_norm_first": False, **LOSS_TERMS}  # fmt: skip
    return TrainConfig(**{**old, **data})


# -- resuming ----------------------------------------------------------------------------------
#: Settings a resumed run may change that do not change what it computes.
RUNTIME = ("steps", "minutes", "stop_cost", "checkpoint_every", "log_every", "threads",
           "device", "backend", "plots", "progress")  # fmt: skip
#: Settings a resumed run may change that change the updates from then on (the continuation
#: then differs from an uninterrupted run; the run's first line says what changed). They are
#: read afresh at every step, so changing them is well defined: e.g. a lower --lr after the
#: cost diverged.
APPLIED = ("lr", "clip_norm", "clip_spike", "clip_norm_first", "weight_decay", *LOSS_TERMS,
           "penalty_from", "warmup_steps", "lr_schedule", "batch_size", "phases")  # fmt: skip
_FLAGS = {"warmup_steps": "--warmup", "phases": "--no-phases", "plots": "--no-plots",
          "progress": "--no-progress", "read_heads": "--heads",
          "write_heads": "--heads"}  # fmt: skip


def flag_name(name: str) -> str:
    """The ``ntm-fast train`` flag of a :class:`TrainConfig` field (or ``model_overrides``
    key)."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, _NUMBER) and isinstance(b, _NUMBER):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def apply_resume_overrides(
    stored: TrainConfig,
    overrides: dict[str, Any],
    *,
    model_config: dict[str, Any],
    task_config: dict[str, Any],
    run: str,
) -> tuple[TrainConfig, list[str]]:
    """``stored`` (a resolved config) with the :data:`RUNTIME` and :data:`APPLIED` entries
    of ``overrides`` applied, and a description of each changed :data:`APPLIED` setting. Any
    other entry must equal the run's value (``model_overrides`` entries are compared with the
    run's ``model_config``, ``task_overrides`` with its ``task_config``), else
    :class:`UserError` lists every differing flag with the run's value."""
    c = TrainConfig(**{f.name: getattr(stored, f.name) for f in fields(stored)})
    changed = []
    differ: dict[str, str] = {}  # flag: what differs (--heads sets two keys)
    for name, value in overrides.items():
        if name in RUNTIME:
            setattr(c, name, value)
        elif name in APPLIED:
            if not _same(value, getattr(stored, name)):
                changed.append(f"{flag_name(name)} {value} (was {getattr(stored, name)})")
            setattr(c, name, value)
        elif name in ("model_overrides", "task_overrides"):
            have = model_config if name == "model_overrides" else task_config
            for key, v in value.items():
                if not _same(v, have.get(key)):
                    if name == "model_overrides":
                        flag, text = flag_name(key), f"{flag_name(key)} {v}"
                    else:
                        flag = text = f"--task-arg {key}={v}"
                    differ.setdefault(flag, f"{text} (the run's: {have.get(key)})")
        elif not _same(value, getattr(stored, name)):
            flag = flag_name(name)
            differ[flag] = f"{flag} {value} (the run's: {getattr(stored, name)})"
    if differ:
        may = ", ".join(flag_name(n) for n in (*RUNTIME, *APPLIED))
        raise UserError(
            f"--resume continues {run} with the model, task, seed and optimiser it was started "
            f"with; these flags differ and cannot change on resume: "
            f"{', '.join(differ.values())}. Drop them, or start a new run with another --out "
            f"(may change on resume: {may})"
        )
    return c, changed


def default_run_dir(c: TrainConfig) -> str:
    """``runs/<task>-<controller>-seed<seed>-<date>-<time>``: where a run without --out goes."""
    return f"runs/{c.task}-{c.controller}-seed{c.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
