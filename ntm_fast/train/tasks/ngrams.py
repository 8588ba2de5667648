"""Dynamic N-grams (paper section 4.4): predict each next bit of a sequence drawn from a fresh
random 6-gram model, and the Bayesian optimal estimator (eq. 10) as the baseline.

Per sequence: a fresh table of ``2**(n-1)`` = 32 probabilities P(next bit = 1 | previous 5
bits), each drawn from Beta(1/2, 1/2) (sampled as sin²(πU/2), U uniform, which is exactly
Beta(1/2, 1/2) - the arcsine law - and keeps the draw on the task's own generator); the first
5 bits are Bernoulli(1/2); the rest of the ``length`` (200) bits follow the table.

Layout: one input channel, one output channel, ``T = length`` steps, mask all 1. Input at step
t is bit x_{t-1} (0 at t = 0); the target at step t is x_t. So the cost covers all 200 bits,
the first 5 included (1 bit each at best); the optimal estimator is scored the same way.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Batch, Task, check_range


class NGramTask(Task):
    name = "ngrams"
    input_size = 1
    output_size = 1

    def __init__(self, seed: int = 0, *, n: int = 6, length: int = 200) -> None:
        super().__init__(seed)
        self.n = check_range("n", n, n, 2)[0]
        self.length = check_range("length", length, length, n)[0]
        self.context = n - 1

    def config(self) -> dict[str, int]:
        return {"n": self.n, "length": self.length}

    def _sample(self, batch_size: int) -> Batch:
        bits, _ = self.sample_bits(batch_size)
        return self.to_batch(bits)

    def sample_bits(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """`(B, length)` bits and the `(B, 2**(n-1))` tables they were drawn from."""
        c = self.context
        u = torch.rand(batch_size, 2**c, generator=self.generator)
        table = torch.sin(0.5 * math.pi * u) ** 2
        draws = torch.rand(batch_size, self.length, generator=self.generator)
        bits = torch.zeros(batch_size, self.length)
        bits[:, :c] = (draws[:, :c] < 0.5).float()
        ctx = torch.zeros(batch_size, dtype=torch.long)  # previous c bits, oldest = MSB
        for t in range(c):
            ctx = ctx * 2 + bits[:, t].long()
        rows = torch.arange(batch_size)
        for t in range(c, self.length):
            bits[:, t] = (draws[:, t] < table[rows, ctx]).float()
            ctx = (ctx * 2 + bits[:, t].long()) % (2**c)
        return bits, table

    def to_batch(self, bits: Tensor) -> Batch:
        B, T = bits.shape
        inputs = torch.zeros(T, B, 1)
        inputs[1:, :, 0] = bits[:, :-1].T
        targets = bits.T.unsqueeze(-1).clone()
        return Batch(inputs, targets, torch.ones(T, B), torch.full((B,), T))

    def optimal_probabilities(self, bits: Tensor) -> Tensor:
        """`(B, T)` P(x_t = 1 | x_<t) of the Bayesian estimator, eq. (10):
        (N1 + 1/2) / (N1 + N0 + 1) over the counts seen after the current context so far;
        1/2 for the first n - 1 bits (they are Bernoulli(1/2))."""
        B, T = bits.shape
        c = self.context
        ones = torch.zeros(B, 2**c)
        total = torch.zeros(B, 2**c)
        probs = torch.full((B, T), 0.5)
        rows = torch.arange(B)
        ctx = torch.zeros(B, dtype=torch.long)
        for t in range(T):
            if t >= c:
                probs[:, t] = (ones[rows, ctx] + 0.5) / (total[rows, ctx] + 1.0)
                ones[rows, ctx] += bits[:, t]
                total[rows, ctx] += 1.0
            ctx = (ctx * 2 + bits[:, t].long()) % (2**c)
        return probs

    def optimal_cost(self, bits: Tensor) -> Tensor:
        """`(B,)` cost in bits per sequence of the optimal estimator."""
        p = self.optimal_probabilities(bits)
        return -(bits * torch.log2(p) + (1 - bits) * torch.log2(1 - p)).sum(dim=1)
