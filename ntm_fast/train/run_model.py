"""The model a run trains: its configuration (the preset's, a resumed run's own, or an
``--init-from`` checkpoint's), built on the run's device from its seed, on fewer memory slots
with ``--train-memory-slots``, and with warm-start weights copied in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..resources import InsufficientMemoryError
from .config import TrainConfig, UserError
from .objective import check_task_fits
from .presets import build_model, preset
from .tasks import Task
from .warm_start import WarmStart


@dataclass
class RunModel:
    """``model`` as built (maybe on fewer slots); ``config``, the model configuration a
    checkpoint records (the evaluated model's); ``warm_start``, the ``--init-from`` source."""

    model: torch.nn.Module
    config: dict[str, Any]
    paper_parameters: int
    warm_start: WarmStart | None


def build_run_model(
    c: TrainConfig, state: dict[str, Any] | None, task: Task, device: torch.device
) -> RunModel:
    """The model of run ``c`` (resolved), ``state`` its checkpoint when resuming."""
    p = preset(c.task, c.controller)
    io = {"input_size": task.input_size, "output_size": task.output_size}
    config = {**p.model, **io, **c.model_overrides}
    warm_start = None
    if state is not None:  # the run's own model, even if the preset changed since
        config = {**state["model_config"], **io}
    elif c.init_from:  # the checkpoint's model; its weights are copied in below
        warm_start = WarmStart.load(c, io)
        config = warm_start.model_config
    built = dict(config)  # on fewer slots with --train-memory-slots
    if c.train_memory_slots:
        built["memory_slots"] = c.train_memory_slots
    if c.controller != "baseline":
        try:
            check_task_fits(built, c, device)
        except InsufficientMemoryError as exc:
            raise UserError(str(exc)) from None
    torch.manual_seed(c.seed)  # parameter initialisation
    try:
        model = build_model(built, c.backend).to(device)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model: {exc}") from None
    if warm_start is not None:
        warm_start.copy_into(model, built)
    return RunModel(model, config, p.paper_parameters, warm_start)
