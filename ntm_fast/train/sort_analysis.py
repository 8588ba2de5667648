"""How a priority-sort NTM uses its memory: the test of the paper's Fig. 17.

The paper's hypothesis: each vector is written to a location that is a linear function of its
priority, and the outputs are read from the locations in order, so the reads traverse the
sorted sequence. Here, over fresh sequences, for every write head the location it focuses on
at each input step (the weighting's arg max) is fitted by a linear function of the priority
(least squares; memory is circular, so over every rotation of the location index, keeping the
best), giving R²; for every read head, the fraction of output steps whose focus is where the
target vector (the j-th highest priority) was written by the best write head. The heads with
the highest R² and hit rate are reported and drawn, with how monotonically the read head's
locations move over the output steps (|Spearman correlation|, rotated as the fit; 1: the
reads traverse the memory in order) (``plotting.plot_sort_memory_use``), among the
heads that focus (mean largest weight >= ``FOCUSED``; all heads when none does): the arg max of
a near-uniform weighting says nothing about where a head writes.

Chance levels (locations drawn uniformly at random, 20 writes and 16 reads over 128 locations,
mean of 200 draws): R² 0.21 (the best of 128 rotations fits noise a little) and read order
0.23; a sorting network as the paper's Fig. 17 describes it scores near 1 on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor, nn

from .tasks import PrioritySortTask

FOCUSED = 0.2  # a head's mean largest weight over the steps analysed


@dataclass
class SortMemoryUse:
    """Fig. 17's quantities over ``sequences`` fresh sequences; per-sequence tensors are of
    sequence 0 (the one drawn)."""

    sequences: int
    write_head: int  # the focused write head whose locations priority explains best
    write_focus: Tensor  # (write heads,) mean largest write weight over the input steps
    read_focus: Tensor  # (read heads,) mean largest read weight over the output steps
    fit_r2: float  # mean over sequences of that head's R² (location ~ a * priority + b)
    read_head: int  # the read head that most often reads where the target was written
    read_hits: float  # fraction of output steps (all sequences) reading the target's location
    read_order: float  # mean |rank correlation| of read_head's locations with output step
    priorities: Tensor  # (inputs,)
    write_locations: Tensor  # (inputs,) rotated as fitted
    fitted_locations: Tensor  # (inputs,)
    write_weightings: Tensor  # (T, N) of write_head, rotated like write_locations
    read_weightings: Tensor  # (T, N) of read_head, rotated alike


def _best_linear_fit(prio: Tensor, loc: Tensor, N: int) -> tuple[float, int, Tensor]:
    """(R², rotation, fitted) of loc rotated by the best of the N rotations ~ a prio + b."""
    shifts = torch.arange(N, dtype=torch.float64).unsqueeze(1)
    y = (loc.double().unsqueeze(0) - shifts) % N  # (N, n)
    x = prio.double() - prio.double().mean()
    slope = (y * x).sum(1) / x.square().sum().clamp_min(1e-12)
    fitted = y.mean(1, keepdim=True) + slope.unsqueeze(1) * x
    ss_res = (y - fitted).square().sum(1)
    ss_tot = (y - y.mean(1, keepdim=True)).square().sum(1)
    # a head that writes every item to one slot explains nothing of the priorities: R² 0, not
    # the 1 that 0/0 would give
    r2 = torch.where(ss_tot > 1e-9, 1 - ss_res / ss_tot.clamp_min(1e-12), 0.0)
    best = int(r2.argmax())
    return float(r2[best]), best, fitted[best]


def _rank_correlation(y: Tensor) -> float:
    """Spearman's correlation of ``y`` with 0, 1, 2, ... (ties ranked by position)."""
    ranks = y.double().argsort(stable=True).argsort().double()
    steps = torch.arange(len(y), dtype=torch.float64)
    a, b = ranks - ranks.mean(), steps - steps.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def _among_focused(score: Tensor, focus: Tensor) -> Tensor:
    focused = focus >= FOCUSED
    return score.where(focused, -torch.inf) if focused.any() else score


@torch.no_grad()
def analyse_sort_memory_use(
    model: nn.Module, task: PrioritySortTask, *, sequences: int = 100, seed: int = 4321
) -> SortMemoryUse:
    """Run ``model`` (an NTM with ``trace``) on ``sequences`` fresh sequences of ``task``'s
    configuration (``seed``: never the training stream) and measure Fig. 17's behaviour."""
    n, k, bits = task.inputs, task.outputs, task.bits
    batch = PrioritySortTask(seed, **task.config()).sample(sequences)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        _, _, trace = model(batch.inputs.to(device), trace=True)
    finally:
        model.train(was_training)
    ww, rw = trace.write_weightings.cpu(), trace.read_weightings.cpu()  # (T, B, H, N)
    N = ww.shape[-1]
    prio = batch.inputs[:n, :, bits]  # (n, B)
    written = ww[:n].argmax(-1)  # (n, B, Hw)
    fits = [[_best_linear_fit(prio[:, b], written[:, b, h], N) for h in range(ww.shape[2])]
            for b in range(sequences)]  # fmt: skip
    r2 = torch.tensor([[fit[0] for fit in per_head] for per_head in fits])
    write_focus = ww[:n].amax(-1).mean((0, 1)).double()
    read_focus = rw[n + 1 : n + 1 + k].amax(-1).mean((0, 1)).double()
    write_head = int(_among_focused(r2.mean(0), write_focus).argmax())
    order = torch.argsort(prio, dim=0, descending=True)[:k]  # (k, B): input step of target j
    target_loc = written[:, :, write_head].gather(0, order)  # (k, B)
    read = rw[n + 1 : n + 1 + k].argmax(-1)  # (k, B, R)
    hits = (read == target_loc.unsqueeze(-1)).double().mean((0, 1))  # per read head
    read_head = int(_among_focused(hits, read_focus).argmax())
    read_order = [abs(_rank_correlation((read[:, b, read_head] - fits[b][write_head][1]) % N))
                  for b in range(sequences)]  # fmt: skip
    _, rotation, fitted = fits[0][write_head]
    return SortMemoryUse(
        sequences=sequences,
        write_head=write_head,
        write_focus=write_focus,
        read_focus=read_focus,
        fit_r2=float(r2[:, write_head].mean()),
        read_head=read_head,
        read_hits=float(hits[read_head]),
        read_order=sum(read_order) / sequences,
        priorities=prio[:, 0],
        write_locations=(written[:, 0, write_head] - rotation) % N,
        fitted_locations=fitted.float(),
        write_weightings=torch.roll(ww[:, 0, write_head], -rotation, -1),
        read_weightings=torch.roll(rw[:, 0, read_head], -rotation, -1),
    )


# Bins of a target's priority gap to the nearest other input's (priorities span [-1, 1]; on
# 128 slots one slot is 2/128 ~ 0.016 of priority when the placement spans the range).
GAP_EDGES = (0.0, 0.01, 0.02, 0.04, 0.08, 2.0)


def errors_by_priority_gap(
    priorities: Tensor, wrong_per_output: Tensor, outputs: int, edges: tuple[float, ...] = GAP_EDGES
) -> list[dict[str, float]]:
    """Bit errors of each output vector by how close its target's priority is to the nearest
    other input's: per bin ``[lo, hi)`` of that gap, the share of outputs in it and their mean
    bit errors. ``priorities``: (inputs, B); ``wrong_per_output``: (outputs, B) wrong bits of
    output j, whose target is the j-th highest priority."""
    target = priorities.sort(0, descending=True).values[:outputs]  # (k, B)
    gap = (priorities.unsqueeze(0) - target.unsqueeze(1)).abs()  # (k, inputs, B)
    # the target itself is at gap 0 exactly once; an equal priority elsewhere is a real tie
    gap = gap.sort(1).values[:, 1]
    rows = []
    for lo, hi in pairwise(edges):
        inside = (gap >= lo) & (gap < hi)
        count = int(inside.sum())
        rows.append({
            "gap_from": lo, "gap_to": hi, "share": count / gap.numel(),
            "bit_errors_per_output": float(wrong_per_output[inside].float().mean()) if count
            else float("nan"),
        })  # fmt: skip
    return rows


@torch.no_grad()
def priority_gap_errors(
    model: nn.Module, task: PrioritySortTask, *, sequences: int = 1000, seed: int = 4321
) -> list[dict[str, float]]:
    """:func:`errors_by_priority_gap` of ``model`` on ``sequences`` fresh sequences of
    ``task``'s configuration (``seed``: never the training stream)."""
    n, k, bits = task.inputs, task.outputs, task.bits
    batch = PrioritySortTask(seed, **task.config()).sample(sequences)
    device = next(model.parameters()).device
    logits = model(batch.inputs.to(device))[0].cpu()
    wrong = (logits[n + 1 : n + 1 + k] > 0).float() != batch.targets[n + 1 : n + 1 + k]
    return errors_by_priority_gap(batch.inputs[:n, :, bits], wrong.sum(-1), k)


def linear_placement_losses(
    slots: int = 128, inputs: int = 20, outputs: int = 16, sequences: int = 100_000, seed: int = 0
) -> float:
    """Targets lost per sequence by Fig. 17's algorithm done exactly: vector i written to slot
    ``floor((p_i + 1) / 2 * slots)`` (priorities uniform in [-1, 1] mapped linearly onto the
    memory), a later write to the same slot replacing it, reads in order. Each lost target
    costs about ``bits / 2`` bit errors, so this is the error floor of the paper's hypothesised
    mechanism at this memory size (Monte Carlo over ``sequences``)."""
    g = torch.Generator().manual_seed(seed)
    prio = torch.rand(sequences, inputs, generator=g, dtype=torch.float64) * 2 - 1
    slot = ((prio + 1) / 2 * slots).long().clamp_max(slots - 1)
    later = torch.ones(inputs, inputs, dtype=torch.bool).triu(1)  # [i, j]: j written after i
    same = slot.unsqueeze(2) == slot.unsqueeze(1)  # (S, i, j)
    overwritten = (same & later).any(2)  # (S, inputs)
    rank = (prio.unsqueeze(1) > prio.unsqueeze(2)).sum(2)  # how many outrank item i
    return float((overwritten & (rank < outputs)).sum()) / sequences
