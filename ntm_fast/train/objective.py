"""The training objective and optimisers (paper section 4.6): binary cross-entropy summed over
a sequence's target bits, reported in bits per sequence; the optional target-phase penalties
(the memory's change, the change the read heads see, the write heads' gate) and weight of an
end marker; the LSTM controller's state reset within a sequence; Graves's RMSProp or Adam; and
the check, before training, that a run's longest episode fits in memory."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..resources import check_training_fits
from ..trace import cat_history
from .config_checks import PENALTIES
from .optim import GravesRMSprop
from .schedule import largest_batch
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


def batch_loss(
    net: torch.nn.Module,
    model: torch.nn.Module,
    batch: Batch,
    write_penalty: float = 0.0,
    read_penalty: float = 0.0,
    gate_penalty: float = 0.0,
    read_entropy_penalty: float = 0.0,
    write_follow_penalty: float = 0.0,
    marker_weight: float = 1.0,
    controller_reset: float = 0.0,
    reset_rng: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss for the gradient, cost, bit errors)`` of one batch (:func:`sequence_cost`); the
    loss adds ``write_penalty`` × :func:`target_memory_change`, ``read_penalty`` ×
    :func:`target_read_change`, ``gate_penalty`` × :func:`target_write_gate`,
    ``read_entropy_penalty`` × :func:`target_read_entropy` (nats) and
    ``write_follow_penalty`` × :func:`target_write_follow` (nats) where they are > 0, and
    counts :func:`end_marker_cost` ``marker_weight`` times instead of once.
    With ``controller_reset`` > 0 the network runs as :func:`reset_forward` says, at the step
    :func:`reset_step` draws from ``reset_rng``."""
    # the penalties need the history
    penalised = bool(write_penalty or read_penalty or gate_penalty or read_entropy_penalty
                     or write_follow_penalty)  # fmt: skip
    at = reset_step(batch, controller_reset, reset_rng) if controller_reset else None
    out = reset_forward(net, model, batch.inputs, at, history=penalised)
    logits = out[0]
    cost, errors = sequence_cost(logits, batch)
    loss = cost
    if marker_weight != 1:
        loss = loss + (marker_weight - 1) * end_marker_cost(logits, batch)
    if not penalised:
        return loss, cost, errors
    history = out[2]
    if write_penalty or read_penalty:
        start = model.initial_state(batch.inputs.shape[1]).memory  # type: ignore[operator]
        memory = torch.cat([start[None], history.memory])
    if write_penalty:
        loss = loss + write_penalty * target_memory_change(memory, batch)
    if read_penalty:
        reads = history.weightings[:, :, : model.read_heads]  # type: ignore[misc]
        loss = loss + read_penalty * target_read_change(memory, reads, batch)
    if gate_penalty:
        gates = history.heads.gate[:, :, model.read_heads :]  # type: ignore[misc]
        loss = loss + gate_penalty * target_write_gate(gates, batch)
    if read_entropy_penalty:
        reads = history.weightings[:, :, : model.read_heads]  # type: ignore[misc]
        loss = loss + read_entropy_penalty * target_read_entropy(reads, batch)
    if write_follow_penalty:
        follow = target_write_follow(history.weightings, model.read_heads, batch)  # type: ignore[arg-type]
        loss = loss + write_follow_penalty * follow
    return loss, cost, errors


def reset_step(batch: Batch, p: float, rng: torch.Generator | None) -> int | None:
    """With probability ``p`` (drawn from ``rng``, a CPU generator), a step drawn uniformly from
    the target phase of the batch's latest-starting sequence, up to the batch's last step but
    one; else None (also when that phase has fewer than two steps). Finding the phase is one
    host sync on a GPU, only in the batches that reset."""
    if rng is None:
        raise ValueError("reset_rng: expected a torch.Generator for controller_reset > 0")
    if float(torch.rand((), generator=rng)) >= p:
        return None
    lo, hi = int(batch.mask.argmax(0).max()), batch.mask.shape[0] - 1  # first target steps
    return int(torch.randint(lo, hi, (), generator=rng)) if hi > lo else None


def reset_forward(
    net: torch.nn.Module, model: torch.nn.Module, x: Tensor, at: int | None, history: bool
) -> tuple[Any, ...]:
    """``net(x)`` (``history=True``: with its history), except that with ``at`` the LSTM
    controller's state is put back to the model's initial state before step ``at``, the memory,
    read vectors and weightings carried on: a network trained so must keep what it needs in the
    memory, as a feedforward controller must (repeat copy's count of repeats). Two calls of
    ``net`` each way; the gradient flows through the state carried between them."""
    kw = {"history": True} if history else {}
    if at is None:
        return net(x, **kw)
    first = net(x[:at], **kw)
    start = first[1]._replace(controller=model.initial_state(x.shape[1]).controller)
    second = net(x[at:], start, **kw)
    logits = torch.cat([first[0], second[0]])
    return (logits, second[1], *([cat_history(first[2], second[2])] if history else []))


def end_marker_cost(logits: Tensor, batch: Batch) -> Tensor:
    """The part of :func:`sequence_cost` on the last output channel, the end marker of a task
    with one (:attr:`ntm_fast.train.tasks.Task.end_marker`): its cross-entropy over the target
    steps, nats per sequence.

    Repeat copy's marker is one bit in 9 x (repeats x length + 1) target bits; weighting it 2-3
    times makes some networks stop on time beyond the training lengths and others fail, and
    weight 2 copies fewer repeats past 10 (docs/results/repeat-copy-marker-weight.md)."""
    ce = F.binary_cross_entropy_with_logits(logits[..., -1], batch.targets[..., -1],
                                            reduction="none")  # fmt: skip
    return (ce * batch.mask).sum() / logits.shape[1]


def _before_targets(memory: Tensor, batch: Batch) -> Tensor:
    """`(B, N, W)`: each sequence's memory before its first target step (``memory`` `(T + 1, B,
    N, W)` is the memory before step 0, then after each step; a sequence without a target step
    gets the initial memory, and no penalty counts it)."""
    rows = torch.arange(memory.shape[1], device=memory.device)
    return memory[batch.mask.argmax(0), rows]


def target_memory_change(memory: Tensor, batch: Batch) -> Tensor:
    """Mean over the batch of ‖M_last − M_before‖²: how much each sequence's memory changes
    over its target phase, from before its first target step to after its last step.
    ``memory`` `(T + 1, B, N, W)` is the memory before step 0, then after each step.

    For copy this is what the output phase writes, which costs nothing at the training lengths
    but wipes unread rows of a long sequence (docs/results/copy-write-penalty.md).
    """
    rows = torch.arange(memory.shape[1], device=memory.device)
    change = memory[batch.lengths, rows] - _before_targets(memory, batch)
    has_target = batch.mask.sum(0) > 0
    return (change.pow(2).sum((-1, -2)) * has_target).mean()


def target_read_change(memory: Tensor, read_weightings: Tensor, batch: Batch) -> Tensor:
    """Mean over the batch of Σ_t ‖w_t (M_{t−1} − M_before)‖² over the target steps t, summed
    over the read heads: how far what they read differs from what they would have read in the
    memory as it was before the target phase. ``memory`` as for :func:`target_memory_change`,
    ``read_weightings`` `(T, B, R, N)`.

    Unlike the whole change, writes to rows that are never read again cost nothing, so copy's
    output phase may keep writing where it has read (docs/results/copy-write-penalty.md)."""
    changed = memory[:-1] - _before_targets(memory, batch)[None]  # read at t: M_{t-1}
    seen = torch.einsum("tbrn,tbnw->tbrw", read_weightings, changed)
    return (seen.pow(2).sum((-1, -2)) * batch.mask).sum() / memory.shape[1]


def target_write_gate(gates: Tensor, batch: Batch) -> Tensor:
    """Mean over the batch of Σ_t g_t over the target steps t, summed over the write heads
    (``gates`` `(T, B, Wh)`): how much their weighting comes from content addressing rather
    than from the previous weighting in the target phase.

    A copy network that writes by content after the delimiter, with a key matching no row,
    spreads its writes over the whole memory and wipes unread rows of a long sequence; the
    ones that keep the previous weighting generalise (docs/results/copy-gate-penalty.md)."""
    return (gates.sum(-1) * batch.mask).sum() / gates.shape[1]


def weighting_entropy(w: Tensor) -> Tensor:
    """H(w) = -Σ_i w(i) ln w(i) over the last dimension (nats; 0: one row, ln N: all alike),
    with 0 ln 0 = 0 and a finite gradient there."""
    return -(w * w.clamp_min(1e-30).log()).sum(-1)


def target_read_entropy(read_weightings: Tensor, batch: Batch) -> Tensor:
    """Mean over the batch of Σ_t H(w_t) = -Σ_i w_t(i) ln w_t(i) over the target steps t, summed
    over the read heads (``read_weightings`` `(T, B, R, N)`; nats): how many rows they read
    from at once (0: one row; ln N: all alike).

    The feedforward N-grams NTMs that read a blur of rows end furthest from the optimal
    estimator (docs/results/ngrams-feedforward.md)."""
    entropy = weighting_entropy(read_weightings).sum(-1)  # over the read heads
    return (entropy * batch.mask).sum() / read_weightings.shape[1]


#: Added to the write weighting inside the log: the penalty's gradient stays below 1 / FLOOR
#: where the read weighting has mass the write weighting lacks.
FOLLOW_FLOOR = 1e-4


def target_write_follow(weightings: Tensor, read_heads: int, batch: Batch) -> Tensor:
    """Mean over the batch of Σ_t -Σ_i r_{t-1}(i) ln(w_t(i) + FOLLOW_FLOOR) over the target
    steps t >= 1, for each write head w paired with the read head r of its index (the first
    min(R, Wh) of each; ``weightings`` `(T, B, R + Wh, N)`, the read heads first; nats). The
    read weighting is detached: the term moves where the heads write, never where they read.
    Lowest where each step writes on the rows the step before read: the paper's account of
    its N-grams network (Fig. 15: a location read, then written on the next step), which
    keeps a context's counts where its reads find them
    (docs/results/ngrams-write-follows-read.md)."""
    pairs = min(read_heads, weightings.shape[2] - read_heads)
    read = weightings[:-1, :, :pairs].detach()
    write = weightings[1:, :, read_heads : read_heads + pairs]
    cross = -(read * (write + FOLLOW_FLOOR).log()).sum((-2, -1))  # (T - 1, B)
    return (cross * batch.mask[1:]).sum() / weightings.shape[1]


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
        batch_size=largest_batch(config),
        steps=steps,
        device=device,
        optimizer_states=3 if config.optimizer == "rmsprop" else 2,
        history=any(getattr(config, name) for name in PENALTIES),  # batch_loss's history=True
    )
