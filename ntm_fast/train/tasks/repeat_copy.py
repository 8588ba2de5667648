"""Repeat copy (paper section 4.2): copy a sequence K times, then emit an end marker.

Layout for ``bits`` = 8, a sequence of length L and K repeats (L and K each uniform over
``min_length..max_length`` and ``min_repeats..max_repeats``, default 1..10, per sequence):

* input channels ``0..bits-1``: the vectors at steps ``0..L-1``; channel ``bits``: delimiter
  flag, 1 at step ``L``; channel ``bits+1``: the repeat count, at step ``L`` only, normalised
  as ``(K - mean) / std`` where mean and std are those of the *training* distribution of K
  (uniform on 1..10: mean 5.5, variance (10² - 1)/12 = 8.25), so the value has mean 0 and
  variance 1 in training. ``input_size = bits + 2``. The delimiter flag is needed because the
  normalised count itself can be near 0.
* steps ``L+1 .. L+L·K``: zero input, target = the sequence K times; step ``L+L·K+1``: target
  = the end marker on output channel ``bits`` (0 elsewhere). ``output_size = bits + 1``.
* mask = 1 on all ``L·K + 1`` target steps; sequence length ``L·K + L + 2``.

``hold_delimiter=1`` (not the paper's layout, as in copy) keeps the delimiter flag on from
step ``L`` through the end-marker step. ``length_power=P`` (training only) draws L with
P(L) proportional to L**P, as in copy (docs/results/length-weighting.md).

Evaluation with more repeats keeps the training normalisation (pass ``count_mean`` and
``count_std`` explicitly, or leave them to default to 1..10's), as a trained net would see.
"""

from __future__ import annotations

import math

import torch

from .base import Batch, Task, check_hold_delimiter, check_length_power, check_range


def uniform_int_moments(low: int, high: int) -> tuple[float, float]:
    """Mean and standard deviation of the uniform distribution on the integers low..high."""
    n = high - low + 1
    return (low + high) / 2, math.sqrt((n * n - 1) / 12)


class RepeatCopyTask(Task):
    name = "repeat_copy"
    training_only = ("length_power",)
    end_marker = True

    def __init__(
        self,
        seed: int = 0,
        *,
        bits: int = 8,
        min_length: int = 1,
        max_length: int = 10,
        min_repeats: int = 1,
        max_repeats: int = 10,
        count_mean: float | None = None,
        count_std: float | None = None,
        hold_delimiter: int = 0,
        length_power: int = 0,
    ) -> None:
        super().__init__(seed)
        self.bits = check_range("bits", bits, bits, 1)[0]
        self.min_length, self.max_length = check_range("length", min_length, max_length, 1)
        self.min_repeats, self.max_repeats = check_range("repeats", min_repeats, max_repeats, 1)
        mean, std = uniform_int_moments(1, 10)
        self.count_mean = mean if count_mean is None else float(count_mean)
        self.count_std = std if count_std is None else float(count_std)
        self.hold_delimiter = check_hold_delimiter(hold_delimiter)
        self.length_power = check_length_power(length_power)
        self.input_size, self.output_size = bits + 2, bits + 1

    def config(self) -> dict[str, float]:
        config = {
            "bits": self.bits, "min_length": self.min_length, "max_length": self.max_length,
            "min_repeats": self.min_repeats, "max_repeats": self.max_repeats,
            "count_mean": self.count_mean, "count_std": self.count_std,
        }  # fmt: skip
        if self.hold_delimiter:  # only then: the paper's task keeps the configuration it had
            config["hold_delimiter"] = 1
        if self.length_power:
            config["length_power"] = self.length_power
        return config

    def normalise(self, repeats: torch.Tensor) -> torch.Tensor:
        return (repeats.float() - self.count_mean) / self.count_std

    def _sample(self, batch_size: int) -> Batch:
        lengths = self._lengths(self.min_length, self.max_length, batch_size, self.length_power)
        repeats = self._randint(self.min_repeats, self.max_repeats, (batch_size,))
        total = lengths * repeats + lengths + 2
        T, L = int(total.max()), int(lengths.max())
        seq = self._bits(L, batch_size, self.bits)
        inputs = torch.zeros(T, batch_size, self.input_size)
        targets = torch.zeros(T, batch_size, self.output_size)
        mask = torch.zeros(T, batch_size)
        b = torch.arange(batch_size)
        inputs[:L, :, : self.bits] = seq * (torch.arange(L).unsqueeze(1) < lengths).unsqueeze(-1)
        inputs[lengths, b, self.bits] = 1.0
        inputs[lengths, b, self.bits + 1] = self.normalise(repeats)
        tt = torch.arange(T).unsqueeze(1)
        offset = tt - lengths - 1  # position within the output phase
        copying = (offset >= 0) & (offset < lengths * repeats)
        src = torch.remainder(offset.clamp(min=0), lengths)
        gathered = seq.gather(0, src.unsqueeze(-1).expand(-1, -1, self.bits))
        targets[:, :, : self.bits] = gathered * copying.unsqueeze(-1)
        end = lengths * repeats + lengths + 1
        targets[end, b, self.bits] = 1.0
        mask[copying] = 1.0
        mask[end, b] = 1.0
        if self.hold_delimiter:
            inputs[..., self.bits] = ((tt >= lengths) & (tt <= end)).float()
        return Batch(inputs, targets, mask, total)
