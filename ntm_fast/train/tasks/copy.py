"""Copy (paper section 4.1): read a sequence of random bit vectors, then write it back.

Layout for ``bits`` = 8 and a sequence of length L (lengths uniform in ``min_length`` ..
``max_length``, default 1..20, drawn per sequence):

* input channels ``0..bits-1``: the vectors at steps ``0..L-1``; channel ``bits``: the
  delimiter flag, 1 at step ``L`` only. ``input_size = bits + 1``.
* steps ``L+1 .. 2L``: all-zero input (the paper gives no input while the target is emitted);
  target = the L vectors; mask = 1. ``output_size = bits``.
* sequence length ``2L + 1``; shorter sequences in a batch are zero-padded at the end.

``hold_delimiter=1`` (not the paper's layout; an experiment, docs/results/copy.md) keeps the
delimiter flag on through the output steps ``L+1 .. 2L``, so that an all-zero data vector no
longer looks like the input of the output phase.

``zero_vector_percent=N`` (training data only: evaluation uses the paper's fair bits,
:data:`Task.training_only`) replaces each data vector by an all-zero one with probability
N/100. In the paper's layout an all-zero vector (1 in 256 of fair vectors) is exactly the
blank input of the output phase; networks trained on fair bits alone copy such sequences a
slot late; trained with N = 10 they do not. The feedforward preset blanks throughout (on fair
bits it never learns the zero vector in 5 of 8 seeds), the LSTM one its first 5,000 sequences
(docs/results/copy-blanked-vectors.md).
``zero_vector_from=A`` / ``zero_vector_until=B`` (training only; B = 0: no end) blank only
the batches whose first sequence is numbered in [A, B) — counted over the whole run (all
data-parallel ranks, :attr:`Task.streams`) and part of the task's state, so a resumed or
distributed run switches where a single unbroken one would.
``length_power=P`` (training only; copy and repeat copy) draws lengths with P(L) proportional
to L**P in the same range: more long sequences. Measured no better at length 120
(docs/results/length-weighting.md), so no preset uses it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import (
    Batch,
    Task,
    check_count,
    check_hold_delimiter,
    check_length_power,
    check_percent,
    check_range,
)


class CopyTask(Task):
    name = "copy"
    training_only = ("zero_vector_percent", "zero_vector_from", "zero_vector_until", "length_power")

    def __init__(
        self,
        seed: int = 0,
        *,
        bits: int = 8,
        min_length: int = 1,
        max_length: int = 20,
        hold_delimiter: int = 0,
        zero_vector_percent: int = 0,
        zero_vector_from: int = 0,
        zero_vector_until: int = 0,
        length_power: int = 0,
    ) -> None:
        super().__init__(seed)
        self.bits = check_range("bits", bits, bits, 1)[0]
        self.min_length, self.max_length = check_range("length", min_length, max_length, 1)
        self.hold_delimiter = check_hold_delimiter(hold_delimiter)
        self.zero_vector_percent = check_percent("zero_vector_percent", zero_vector_percent)
        self.zero_vector_from = check_count("zero_vector_from", zero_vector_from)
        self.zero_vector_until = check_count("zero_vector_until", zero_vector_until)
        if self.zero_vector_until and self.zero_vector_until <= self.zero_vector_from:
            raise ValueError(
                f"zero_vector_until: expected 0 (no end) or more than zero_vector_from "
                f"({self.zero_vector_from}), got {self.zero_vector_until}"
            )
        self.length_power = check_length_power(length_power)
        self.sequences_drawn = 0
        self.input_size, self.output_size = bits + 1, bits

    def config(self) -> dict[str, int]:
        config = {"bits": self.bits, "min_length": self.min_length, "max_length": self.max_length}
        if self.hold_delimiter:  # only then: the paper's task keeps the configuration it had
            config["hold_delimiter"] = 1
        if self.zero_vector_percent:
            config["zero_vector_percent"] = self.zero_vector_percent
        for name in ("zero_vector_from", "zero_vector_until", "length_power"):
            if getattr(self, name):
                config[name] = getattr(self, name)
        return config

    def state_dict(self) -> dict[str, Tensor]:
        return {**super().state_dict(), "sequences_drawn": torch.tensor(self.sequences_drawn)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        super().load_state_dict(state)
        self.sequences_drawn = int(state.get("sequences_drawn", 0))

    def _sample(self, batch_size: int) -> Batch:
        lengths = self._lengths(self.min_length, self.max_length, batch_size, self.length_power)
        L = int(lengths.max())
        T = 2 * L + 1
        seq = self._bits(L, batch_size, self.bits)
        n = self.sequences_drawn  # a batch is blanked or not as a whole, by its first sequence
        blanking = (
            self.zero_vector_percent
            and self.zero_vector_from <= n
            and (not self.zero_vector_until or n < self.zero_vector_until)
        )
        self.sequences_drawn += batch_size * self.streams  # the whole run's count
        if blanking:  # drawn only then: the paper's stream stays as it was
            blank = torch.rand(L, batch_size, 1, generator=self.generator)
            seq = seq * (blank >= self.zero_vector_percent / 100)
        t = torch.arange(L).unsqueeze(1)
        seq = seq * (t < lengths).unsqueeze(-1)  # zero past each sequence's length
        inputs = torch.zeros(T, batch_size, self.input_size)
        targets = torch.zeros(T, batch_size, self.output_size)
        mask = torch.zeros(T, batch_size)
        b = torch.arange(batch_size)
        inputs[:L, :, : self.bits] = seq
        inputs[lengths, b, self.bits] = 1.0
        # target step for vector i of sequence b is lengths[b] + 1 + i
        tt = torch.arange(T).unsqueeze(1)
        in_target = (tt > lengths) & (tt <= 2 * lengths)
        mask[in_target] = 1.0
        if self.hold_delimiter:
            inputs[..., self.bits] += in_target.float()
        src = (tt - lengths - 1).clamp(0, L - 1)  # which input vector each step copies
        gathered = seq.gather(0, src.unsqueeze(-1).expand(-1, -1, self.bits))
        targets[:] = gathered * in_target.unsqueeze(-1)
        return Batch(inputs, targets, mask, 2 * lengths + 1)
