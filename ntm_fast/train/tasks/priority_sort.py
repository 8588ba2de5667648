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

    def __init__(
        self, seed: int = 0, *, bits: int = 8, inputs: int = 20, outputs: int = 16,
        spacing: float = 0.0,
    ):  # fmt: skip
        super().__init__(seed)
        self.bits = check_range("bits", bits, bits, 1)[0]
        self.inputs = check_range("inputs", inputs, inputs, 1)[0]
        self.outputs = check_range("outputs", outputs, outputs, 1)[0]
        if outputs > inputs:
            raise ValueError(f"outputs: expected <= inputs = {inputs}, got {outputs}")
        self.input_size, self.output_size = bits + 2, bits
        if isinstance(spacing, bool) or not isinstance(spacing, (int, float)):
            raise TypeError(f"spacing: expected a number, got {type(spacing).__name__}")
        if not 0 <= spacing <= 2 / max(inputs - 1, 1):
            raise ValueError(
                f"spacing: expected 0 (uniform priorities) or a gap with {inputs} levels in "
                f"[-1, 1], at most {2 / max(inputs - 1, 1):.4g}; got {spacing}"
            )
        self.spacing = float(spacing)

    def config(self) -> dict[str, int]:
        config = {"bits": self.bits, "inputs": self.inputs, "outputs": self.outputs}
        if self.spacing:  # only then: the paper's task keeps the configuration it always had
            config["spacing"] = self.spacing
        return config

    def _sample(self, batch_size: int) -> Batch:
        n, k, bits = self.inputs, self.outputs, self.bits
        seq = self._bits(n, batch_size, bits)
        prio = torch.rand(n, batch_size, generator=self.generator) * 2 - 1
        if self.spacing:
            span = self.spacing * (n - 1)
            offset = torch.rand(batch_size, generator=self.generator) * (2 - span) - 1
            levels = torch.rand(n, batch_size, generator=self.generator).argsort(0)
            prio = (levels * self.spacing + offset).clamp(-1, 1)
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
