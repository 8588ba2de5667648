"""The training objective and optimisers (paper section 4.6): binary cross-entropy summed over
a sequence's target bits, reported in bits per sequence; Graves's RMSProp or Adam."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .optim import GravesRMSprop
from .tasks import Batch

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
    """``"rmsprop"`` (:class:`ntm_fast.optim.GravesRMSprop`) or ``"adam"``."""
    if name == "rmsprop":
        return GravesRMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)
