"""Repeat copy's evaluation keeps the copies and the end marker apart (paper Fig. 8: beyond
the training range the copies can stay right while the end marker fails)."""

from __future__ import annotations

import torch

from ntm_fast.train.evaluate import repeat_copy_split, score
from ntm_fast.train.tasks import RepeatCopyTask


class _Oracle(torch.nn.Module):
    """Emits the targets as logits (+-10), with chosen bits flipped."""

    def __init__(self, targets: torch.Tensor, flips: list[tuple[int, int, int]]):
        super().__init__()
        self.logits = (targets * 2 - 1) * 10
        for t, b, c in flips:
            self.logits[t, b, c] *= -1

    def forward(self, x):
        return (self.logits,)


def test_copy_errors_and_end_marker_are_counted_apart():
    task = RepeatCopyTask(seed=3, min_length=2, max_length=4, min_repeats=2, max_repeats=3)
    batch = task.sample(3)
    bits = task.bits
    copy_steps = (batch.targets[..., bits] == 0) & batch.mask.bool()
    t0 = int(copy_steps[:, 0].nonzero()[0])  # a copy step of sequence 0
    end1 = int((batch.targets[:, 1, bits] == 1).nonzero()[0])  # sequence 1's end marker
    t2 = int(copy_steps[:, 2].nonzero()[-1])  # a false end marker in sequence 2
    flips = [(t0, 0, 0), (t0, 0, 5), (end1, 1, bits), (t2, 2, bits)]
    _, errors, _, wrong = score(_Oracle(batch.targets, flips), batch)
    assert errors.tolist() == [2, 1, 1]
    copy_wrong, copy_bits, marker_right = repeat_copy_split(wrong, batch, bits)
    assert copy_wrong == 2 and copy_bits == float(copy_steps.sum()) * bits
    assert marker_right == 1  # only sequence 0's marker channel is right everywhere
