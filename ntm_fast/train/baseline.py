"""The LSTM baseline of the paper's Table 3: a deep LSTM in the form of Graves (2013).

Three stacked LSTM layers where every layer sees the input (skip connections from the input)
and layer l > 1 also sees layer l-1's output; the output layer sees every layer's output.
Initial hidden and cell states are learned biases (the paper's episodic reset). It has the
NTM's ``forward(x, state=None, *, lengths=None, trace=False)`` so the trainer treats both
alike. Each layer runs as one :class:`torch.nn.LSTM` call over the whole sequence (fast
fused kernels) - possible because a layer depends on the layer below only at the same step.

Gate biases: Graves's cells have one bias per gate, torch's LSTM two (``bias_ih`` and
``bias_hh``, which only ever act as their sum). ``gate_biases=1`` (the default) gives Graves's
count: each layer is a bias-free ``nn.LSTM`` that sees one extra input channel held at 1, so
the last column of ``weight_ih_l0`` is the gate bias. With it the parameter counts are Table
3's (docs/parameter-counts.md). ``gate_biases=2`` is torch's
form, which checkpoints written before this option hold. Graves's peephole connections are
not modelled: Table 3's counts show the paper's baseline had none either.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DeepLSTM(nn.Module):
    """``layers`` LSTM layers of ``hidden_size`` units with input and output skip connections."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        hidden_size: int = 256,
        layers: int = 3,
        gate_biases: int = 1,
    ) -> None:
        super().__init__()
        for name, v in (("input_size", input_size), ("output_size", output_size),
                        ("hidden_size", hidden_size), ("layers", layers)):  # fmt: skip
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if type(gate_biases) is not int or gate_biases not in (1, 2):
            raise ValueError(
                f"gate_biases: expected 1 (Graves 2013, Table 3) or 2 (torch's LSTM), "
                f"got {gate_biases!r}"
            )
        self.config = dict(
            input_size=input_size, output_size=output_size, hidden_size=hidden_size,
            layers=layers, gate_biases=gate_biases,
        )  # fmt: skip
        self.input_size, self.output_size = input_size, output_size
        self.gate_biases = gate_biases
        bias_channel = int(gate_biases == 1)  # an input held at 1: its weights are the bias
        self.lstms = nn.ModuleList(
            nn.LSTM(
                input_size + (hidden_size if i else 0) + bias_channel,
                hidden_size,
                bias=gate_biases == 2,
            )
            for i in range(layers)
        )
        self.output = nn.Linear(layers * hidden_size, output_size)
        self.h0 = nn.Parameter(torch.zeros(layers, hidden_size))
        self.c0 = nn.Parameter(torch.zeros(layers, hidden_size))

    def parameter_counts(self) -> dict[str, int]:
        counts = {
            "lstm_layers": sum(p.numel() for p in self.lstms.parameters()),
            "output": sum(p.numel() for p in self.output.parameters()),
            "initial_state": self.h0.numel() + self.c0.numel(),
        }
        counts["total"] = sum(counts.values())
        return counts

    def forward(
        self,
        x: Tensor,
        state: tuple[Tensor, Tensor] | None = None,
        *,
        lengths: Tensor | None = None,
        trace: bool = False,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """`x` `(T, B, input_size)` -> logits `(T, B, output_size)` and the final (h, c), each
        `(layers, B, hidden)`. ``lengths`` is accepted for signature compatibility; padding
        after the last target never affects the cost of a causal model, so it is ignored.
        ``trace`` is not available: there is no memory to trace."""
        if trace:
            raise ValueError("trace: the LSTM baseline has no memory to trace")
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected (T, B, {self.input_size}), got {tuple(x.shape)}")
        B = x.shape[1]
        if state is None:
            h0 = self.h0.unsqueeze(1).expand(-1, B, -1)
            c0 = self.c0.unsqueeze(1).expand(-1, B, -1)
        else:
            h0, c0 = state
        ones = [x.new_ones(*x.shape[:2], 1)] if self.gate_biases == 1 else []
        outs, hs, cs = [], [], []
        below: Tensor | None = None
        for i, lstm in enumerate(self.lstms):
            parts = [x, *([] if below is None else [below]), *ones]
            inp = torch.cat(parts, dim=-1) if len(parts) > 1 else x  # no copy of x alone
            below, (h, c) = lstm(inp, (h0[i : i + 1].contiguous(), c0[i : i + 1].contiguous()))
            outs.append(below)
            hs.append(h[0])
            cs.append(c[0])
        logits = self.output(torch.cat(outs, dim=-1))
        return logits, (torch.stack(hs), torch.stack(cs))
