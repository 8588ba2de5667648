"""``ntm-fast train --init-from CHECKPOINT``: a new run that starts from a trained model's
weights instead of a fresh initialisation.

What carries over is the model (its configuration and weights) and its count of training
sequences (so the new run's log continues the source's learning curve); the optimiser's
state, the step count, the learning-rate schedule and the data stream start afresh, so the
new run is defined by its own flags plus the source's weights (its ``config.init_from``
records where they came from). That is what continuing a finished run
under another recipe needs — e.g. from a committed, evaluation-only checkpoint, whose
optimiser state was not kept — where ``--resume`` continues a run exactly and needs its
whole checkpoint. The source must have been trained on the same task with the same
controller; the task's settings (``--task-arg``) may differ, the model's may not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .checkpoint import CheckpointError, load_checkpoint, load_model
from .config import TrainConfig, UserError, config_from_dict, flag_name


@dataclass
class WarmStart:
    """The model of the checkpoint at ``path``: ``model_config`` (the new run's), and the
    ``step`` and ``sequences`` it had been trained for."""

    path: str
    model_config: dict[str, Any]
    step: int
    sequences: int

    @classmethod
    def load(cls, config: TrainConfig, io: dict[str, int]) -> WarmStart:
        """Read ``config.init_from`` for a run of ``config`` whose task has the input and
        output sizes ``io``; a checkpoint of another task, controller or model is a
        :class:`UserError` naming what differs."""
        path = str(config.init_from)
        try:
            state = load_checkpoint(path)
            source = config_from_dict(state["config"], path)
        except (CheckpointError, ValueError) as exc:
            raise UserError(f"--init-from: {exc}") from None
        theirs = (source.task, source.controller)
        if theirs != (config.task, config.controller):
            raise UserError(
                f"--init-from {path}: holds a {theirs[0]} model with --controller {theirs[1]}; "
                f"this run trains {config.task} with --controller {config.controller}"
            )
        model = dict(state["model_config"])
        asked = {**config.model_overrides, **io}
        named = {**{k: flag_name(k) for k in config.model_overrides},
                 **{k: f"the task's {k.replace('_', ' ')}" for k in io}}  # fmt: skip
        differ = [f"{named[k]} {v} (the checkpoint's: {model.get(k)})"
                  for k, v in asked.items() if model.get(k) != v]  # fmt: skip
        if differ:
            raise UserError(
                f"--init-from {path}: the model comes from the checkpoint, and these settings "
                f"differ from its: {', '.join(differ)}; drop them or start without --init-from"
            )
        return cls(path, model, int(state["step"]), int(state["sequences"]))

    def copy_into(self, model: torch.nn.Module, built: dict[str, Any]) -> None:
        """Load the weights into ``model``, built from ``built`` (the model configuration,
        on fewer memory slots with ``--train-memory-slots``): a model trained on another
        number of slots is grown to it where its initial memory allows
        (:mod:`ntm_fast.memory_size`), else a :class:`UserError`."""
        try:
            _, source = load_model(self.path, memory_slots=built.get("memory_slots"))
        except (CheckpointError, UserError) as exc:
            raise UserError(f"--init-from: {exc}") from None
        model.load_state_dict(source.state_dict())

    def describe(self) -> str:
        """The run's header line."""
        return (
            f"starting from the weights of {self.path} (trained {self.step} steps, "
            f"{self.sequences} sequences, where this run's count of sequences starts); optimiser, "
            "step count and data start afresh"
        )
