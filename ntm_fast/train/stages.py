"""A preset's finishing stage: ``ntm-fast train`` as one run, or a run and then a short
second one that starts from its weights.

Some recipes train in two stages (docs/training-memory.md): the feedforward NTM learns
repeat copy best on 64 of its 128 memory slots, but where its output ends depends on the
slot count, so a short stage on all 128 slots, from the first stage's weights with a fresh
optimiser (:mod:`ntm_fast.train.warm_start`), finishes it. A preset that has one names it
in ``train["finish"]``: its ``steps`` (``--finish-steps``; 0: none) and the settings that
differ from the first stage's (e.g. ``train_memory_slots``, ``lr``, ``lr_schedule``).

On disk, ``RUN/stage1/`` is the first stage's run directory and ``RUN/`` the finished
model's, so ``ntm-fast eval RUN`` evaluates the finished model; ``RUN``'s log continues
the first stage's count of sequences (``ntm-fast plot RUN`` draws both as one curve).
``--resume --out RUN`` continues whichever stage was interrupted; the finishing stage
starts only after the first reached its ``--steps``.
"""

from __future__ import annotations

import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from . import distributed, loop
from .checkpoint import CHECKPOINT, load_checkpoint
from .config import RUNTIME, TrainConfig, UserError, config_from_dict, default_run_dir, flag_name
from .config_checks import LOSS_TERMS
from .presets import preset
from .rundir import STAGE1
from .trainer import Trainer

#: Settings of the first stage the finishing stage keeps (besides the preset's ``finish``).
_KEPT = (*RUNTIME, "task", "controller", "seed", "batch_size", "optimizer", "clip",
         "clip_norm", "clip_spike", "clip_norm_first", "weight_decay", *LOSS_TERMS, "penalty_from",
         "task_overrides")  # fmt: skip


def finishing_config(first: TrainConfig, out: str) -> TrainConfig:
    """The finishing stage of ``first`` (a resolved config with ``finish_steps`` > 0), in
    ``out``: ``first``'s data, batch, optimiser and run-time settings, the preset's
    ``finish`` settings, ``finish_steps`` steps, started from ``first``'s weights."""
    finish = dict(preset(first.task, first.controller).train.get("finish", {}))
    finish.pop("steps", None)
    kept = {f.name: getattr(first, f.name) for f in fields(first) if f.name in _KEPT}
    return TrainConfig(**{  # the first stage's phases are its own (phases: [] unless finish's)
        **kept, "phases": [], **finish, "steps": first.finish_steps, "finish_steps": 0, "out": out,
        "init_from": str(Path(out) / STAGE1), "minutes": None, "stop_cost": None,
    })  # fmt: skip


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    resume_overrides: dict[str, Any] | None = None,
    dist_backend: str | None = None,
) -> dict[str, Any]:
    """Train (or resume) ``config`` and, where its preset has a finishing stage, that stage
    too (module docstring); returns the last run's summary, with the first stage's under
    ``"stage1"``. Under ``torchrun`` this is data-parallel training
    (:mod:`ntm_fast.train.distributed`). ``config.finish_steps = 0`` trains one run."""
    kw = dict(resume_overrides=resume_overrides, dist_backend=dist_backend)
    finish_steps = 0 if resume else config.resolved().finish_steps
    staged = bool(finish_steps)
    if not staged and not (resume and config.out):  # one run (it names the default --out)
        return train_run(config, resume=resume, **kw)
    if not config.out and distributed.launched():  # a name of the clock's could differ by rank
        raise UserError("--out: a run with a finishing stage under torchrun needs --out RUN_DIR")
    out = Path(config.out or default_run_dir(config))
    stage1 = out / STAGE1
    if resume and ((out / CHECKPOINT).exists() or not (stage1 / CHECKPOINT).exists()):
        return train_run(config, resume=True, **kw)  # one run, or the finishing stage
    if not resume and (out / CHECKPOINT).exists():  # before spending a first stage on it
        raise UserError(f"{out / CHECKPOINT} exists: pass --resume to continue that run "
                        "or choose another --out")  # fmt: skip
    first = None
    if not resume and distributed.is_main():
        print(f"stage 1 of 2 in {stage1}, then a finishing stage of "
              f"{finish_steps} steps in {out}", file=sys.stderr)  # fmt: skip
    if not resume or not _finished(stage1, resume_overrides or {}):
        first = train_run(replace(config, out=str(stage1)), resume=resume, **kw)
        if first["reason"] != "steps":
            if distributed.is_main():
                print(f"stage 1 stopped ({first['reason']}) before its last step, so the "
                      f"finishing stage did not run; `--resume --out {out}` continues stage 1 "
                      "and then runs it", file=sys.stderr)  # fmt: skip
            return first
    stored = config_from_dict(load_checkpoint(stage1)["config"], str(stage1)).resolved()
    finish = finishing_config(stored, str(out))
    if resume:  # run-time flags given now apply to the finishing stage too (not stage 1's length)
        given = {k: v for k, v in (resume_overrides or {}).items()
                 if k in RUNTIME and k not in ("steps", "minutes", "stop_cost")}  # fmt: skip
        finish = replace(finish, **given)
    if distributed.is_main():
        print(f"stage 2 of 2: {finish.steps} finishing steps from stage 1's weights "
              f"({_differences(stored, finish)})", file=sys.stderr)  # fmt: skip
    last = train_run(finish, dist_backend=dist_backend)
    return {**last, "stage1": first} if first else last


def _finished(stage1: Path, overrides: dict[str, Any]) -> bool:
    """Whether the first stage in ``stage1`` reached its steps (``--steps`` on resume may
    extend it), so that resuming means starting the finishing stage."""
    state = load_checkpoint(stage1)
    steps = overrides.get("steps") or state["config"].get("steps") or 0
    return int(state["step"]) >= steps


def _differences(first: TrainConfig, finish: TrainConfig) -> str:
    f = finish.resolved()
    names = ("train_memory_slots", "lr", "lr_schedule", "warmup_steps")
    changed = [
        f"{flag_name(n)} {getattr(f, n)}" for n in names if getattr(f, n) != getattr(first, n)
    ]
    return ", ".join(changed) or "the same settings, a fresh optimiser"


def train_run(
    config: TrainConfig,
    *,
    resume: bool = False,
    resume_overrides: dict[str, Any] | None = None,
    dist_backend: str | None = None,
) -> dict[str, Any]:
    """Train (or resume) one run and return its summary; prints the parameter table
    (:func:`.stages.train` adds a preset's finishing stage). Under ``torchrun``: data-parallel
    (:mod:`.distributed`; ``batch_size`` per rank, ``dist_backend`` the group's backend)."""
    with distributed.session(dist_backend):
        trainer = Trainer(config, resume=resume, resume_overrides=resume_overrides)
        if distributed.is_main():
            loop.print_header(trainer, resume)
        summary = trainer.run()
        # free the trainer and its DDP wrapper before the group is destroyed (torch 2.13 still
        # keeps the group's threads to exit: hence distributed._recent_ops)
        del trainer
    return summary
