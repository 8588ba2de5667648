"""Priority sort (paper section 4.5): output the highest-priority input vectors, sorted.

Layout for ``bits`` = 8, ``inputs`` = 20 vectors and ``outputs`` = 16:

* steps ``0..inputs-1``: input channels ``0..bits-1`` carry a random vector, channel ``bits``
  its priority, uniform in [-1, 1]; step ``inputs``: delimiter flag on channel ``bits + 1``.
  ``input_size = bits + 2``.
* steps ``inputs+1 .. inputs+outputs``: zero input; target = the ``outputs`` vectors of highest
  priority in descending priority order; mask 1. ``output_size = bits``.
"""

from __future__ import annotations

import torch

from .base import Batch, Task, check_range


class PrioritySortTask(Task):
    name = "priority_sort"

    def __init__(self, seed: int = 0, *, bits: int = 8, inputs: int = 20, outputs: int = 16):
        super().__init__(seed)
        self.bits = check_range("bits", bits, bits, 1)[0]
        self.inputs = check_range("inputs", inputs, inputs, 1)[0]
        self.outputs = check_range("outputs", outputs, outputs, 1)[0]
        if outputs > inputs:
            raise ValueError(f"outputs: expected <= inputs = {inputs}, got {outputs}")
        self.input_size, self.output_size = bits + 2, bits

    def config(self) -> dict[str, int]:
        return {"bits": self.bits, "inputs": self.inputs, "outputs": self.outputs}

    def _sample(self, batch_size: int) -> Batch:
        n, k, bits = self.inputs, self.outputs, self.bits
        seq = self._bits(n, batch_size, bits)
        prio = torch.rand(n, batch_size, generator=self.generator) * 2 - 1
        T = n + 1 + k
        inputs = torch.zeros(T, batch_size, self.input_size)
        inputs[:n, :, :bits] = seq
        inputs[:n, :, bits] = prio
        inputs[n, :, bits + 1] = 1.0
        order = torch.argsort(prio, dim=0, descending=True)[:k]  # (k, B)
        targets = torch.zeros(T, batch_size, self.output_size)
        targets[n + 1 :] = seq.gather(0, order.unsqueeze(-1).expand(-1, -1, bits))
        mask = torch.zeros(T, batch_size)
        mask[n + 1 :] = 1.0
        return Batch(inputs, targets, mask, torch.full((batch_size,), T))
