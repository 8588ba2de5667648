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
reads traverse the memory in order) (:func:`plot_sort_memory_use`), among the
heads that focus (mean largest weight >= ``FOCUSED``; all heads when none does): the arg max of
a near-uniform weighting says nothing about where a head writes.

Chance levels (locations drawn uniformly at random, 20 writes and 16 reads over 128 locations,
mean of 200 draws): R² 0.21 (the best of 128 rotations fits noise a little) and read order
0.23; a sorting network as the paper's Fig. 17 describes it scores near 1 on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    ss_tot = (y - y.mean(1, keepdim=True)).square().sum(1).clamp_min(1e-12)
    r2 = 1 - ss_res / ss_tot
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
    r2 = torch.tensor([[_best_linear_fit(prio[:, b], written[:, b, h], N)[0]
                        for h in range(ww.shape[2])] for b in range(sequences)])  # fmt: skip
    write_focus = ww[:n].amax(-1).mean((0, 1)).double()
    read_focus = rw[n + 1 : n + 1 + k].amax(-1).mean((0, 1)).double()
    write_head = int(_among_focused(r2.mean(0), write_focus).argmax())
    order = torch.argsort(prio, dim=0, descending=True)[:k]  # (k, B): input step of target j
    target_loc = written[:, :, write_head].gather(0, order)  # (k, B)
    read = rw[n + 1 : n + 1 + k].argmax(-1)  # (k, B, R)
    hits = (read == target_loc.unsqueeze(-1)).double().mean((0, 1))  # per read head
    read_head = int(_among_focused(hits, read_focus).argmax())
    rotations = [_best_linear_fit(prio[:, b], written[:, b, write_head], N)[1]
                 for b in range(sequences)]  # fmt: skip
    order = [abs(_rank_correlation((read[:, b, read_head] - rotations[b]) % N))
             for b in range(sequences)]  # fmt: skip
    _, rotation, fitted = _best_linear_fit(prio[:, 0], written[:, 0, write_head], N)
    return SortMemoryUse(
        sequences=sequences,
        write_head=write_head,
        write_focus=write_focus,
        read_focus=read_focus,
        fit_r2=float(r2[:, write_head].mean()),
        read_head=read_head,
        read_hits=float(hits[read_head]),
        read_order=sum(order) / sequences,
        priorities=prio[:, 0],
        write_locations=(written[:, 0, write_head] - rotation) % N,
        fitted_locations=fitted.float(),
        write_weightings=torch.roll(ww[:, 0, write_head], -rotation, -1),
        read_weightings=torch.roll(rw[:, 0, read_head], -rotation, -1),
    )


def plot_sort_memory_use(use: SortMemoryUse, path: str | Path) -> Path:
    """Fig. 17's three panels for sequence 0: the locations the linear fit of the priorities
    predicts, the observed write weightings and the read weightings (rotated as fitted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    N = use.write_weightings.shape[1]
    n = use.priorities.shape[0]
    hypothesised = torch.zeros(n, N)
    at = use.fitted_locations.round().long().clamp(0, N - 1)
    hypothesised[torch.arange(n), at] = 1.0
    reads = use.read_weightings[n + 1 :]
    seen = torch.cat([at, use.write_weightings[:n].argmax(1), reads.argmax(1)])
    lo, hi = max(0, int(seen.min()) - 4), min(N, int(seen.max()) + 5)  # the rows in use
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), sharey=True)
    panels = [
        (f"Hypothesised locations (R² {use.fit_r2:.2f})", hypothesised),
        (f"Write weightings (head {use.write_head})", use.write_weightings[:n]),
        (
            f"Read weightings (head {use.read_head}, {use.read_hits:.0%} on target, "
            f"order {use.read_order:.2f})",
            reads,
        ),
    ]
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(img[:, lo:hi].T.numpy(), cmap="gray", vmin=0, vmax=1, aspect="auto",
                  interpolation="nearest", origin="lower",
                  extent=(-0.5, img.shape[0] - 0.5, lo - 0.5, hi - 0.5))  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time")
    axes[0].set_ylabel("location (rotated as fitted)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
