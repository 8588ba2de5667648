"""Associative recall (paper section 4.3): given a list of items and one of them, recall the next.

An item is ``item_length`` (3) vectors of ``bits`` (6) random bits. With n items (uniform in
``min_items..max_items``, default 2..6, per sequence) and query index q (uniform in 0..n-2):

* input channels ``0..bits-1`` carry the vectors; channel ``bits`` is the item delimiter and
  channel ``bits+1`` the query delimiter. ``input_size = bits + 2``, ``output_size = bits``.
* steps: for each item, one item-delimiter step then its vectors; then a query-delimiter
  step, the query item (a copy of item q), a second query-delimiter step (which tells the
  net the query is over), then ``item_length`` steps of zero input whose target (mask 1) is
  item q + 1. Sequence length ``n·(item_length + 1) + 2 + 2·item_length``.
"""

from __future__ import annotations

import torch

from .base import Batch, Task, check_range


class AssociativeRecallTask(Task):
    name = "associative_recall"

    def __init__(
        self,
        seed: int = 0,
        *,
        bits: int = 6,
        item_length: int = 3,
        min_items: int = 2,
        max_items: int = 6,
    ) -> None:
        super().__init__(seed)
        self.bits = check_range("bits", bits, bits, 1)[0]
        self.item_length = check_range("item_length", item_length, item_length, 1)[0]
        self.min_items, self.max_items = check_range("items", min_items, max_items, 2)
        self.input_size, self.output_size = bits + 2, bits

    def config(self) -> dict[str, int]:
        return {
            "bits": self.bits, "item_length": self.item_length,
            "min_items": self.min_items, "max_items": self.max_items,
        }  # fmt: skip

    def sequence_length(self, items: torch.Tensor) -> torch.Tensor:
        return items * (self.item_length + 1) + 2 + 2 * self.item_length

    def _sample(self, batch_size: int) -> Batch:
        n = self._randint(self.min_items, self.max_items, (batch_size,))
        # q uniform in 0..n-2, drawn as floor(u * (n - 1)) from one generator call
        u = torch.rand(batch_size, generator=self.generator)
        q = (u * (n - 1)).long().clamp(max=n - 2)
        K, bits, nmax = self.item_length, self.bits, int(n.max())
        items = self._bits(batch_size, nmax, K, bits)
        lengths = self.sequence_length(n)
        T = int(lengths.max())
        inputs = torch.zeros(T, batch_size, self.input_size)
        targets = torch.zeros(T, batch_size, self.output_size)
        mask = torch.zeros(T, batch_size)
        for b in range(batch_size):
            nb, qb = int(n[b]), int(q[b])
            x = inputs[:, b]
            for i in range(nb):
                s = i * (K + 1)
                x[s, bits] = 1.0
                x[s + 1 : s + 1 + K, :bits] = items[b, i]
            s = nb * (K + 1)
            x[s, bits + 1] = 1.0
            x[s + 1 : s + 1 + K, :bits] = items[b, qb]
            x[s + 1 + K, bits + 1] = 1.0
            out = s + 2 + K
            targets[out : out + K, b] = items[b, qb + 1]
            mask[out : out + K, b] = 1.0
        return Batch(inputs, targets, mask, lengths)
