"""The training objective and optimisers (paper section 4.6): binary cross-entropy summed over
a sequence's target bits, reported in bits per sequence; Graves's RMSProp or Adam; and the
check, before training, that a run's longest episode fits in memory."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..resources import check_training_fits
from .optim import GravesRMSprop
from .tasks import Batch, make_task

LN2 = math.log(2.0)


def sequence_cost(logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
    """Mean cost per sequence in nats (for the gradient) and mean bit errors per sequence.

    Cross-entropy is summed over the masked steps and all output bits of each sequence, then
    averaged over the batch; divide by ln 2 for the paper's bits per sequence.
    """
    B = logits.shape[1]
    ce = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none").sum(-1)
    cost = (ce * batch.mask).sum() / B
    wrong = ((logits > 0).to(logits.dtype) != batch.targets).to(logits.dtype).sum(-1)
    return cost, (wrong * batch.mask).sum().detach() / B


def make_optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    """``"rmsprop"`` (:class:`ntm_fast.train.optim.GravesRMSprop`) or ``"adam"``."""
    if name == "rmsprop":
        return GravesRMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def check_task_fits(model_config: dict[str, Any], config: Any, device: torch.device) -> None:
    """:func:`ntm_fast.resources.check_training_fits` for a training run (a
    :class:`ntm_fast.train.TrainConfig`): the longest episode is estimated from a separately
    seeded copy of the task (64 x 8 samples), so the training stream is untouched."""
    probe = make_task(config.task, 0, **config.task_overrides)
    steps = max(probe.sample(64).inputs.shape[0] for _ in range(8))
    check_training_fits(
        model_config,
        batch_size=config.batch_size,
        steps=steps,
        device=device,
        optimizer_states=3 if config.optimizer == "rmsprop" else 2,
    )
