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
