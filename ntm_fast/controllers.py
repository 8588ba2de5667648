"""Controller networks: an LSTM stack and a feedforward stack (paper section 3.4)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LSTMController(nn.Module):
    """A stack of ``layers`` LSTM cells; layer l > 0 sees the hidden state of layer l - 1.

    The state is ``(h, c)``, each `(layers, B, hidden)`, like :class:`torch.nn.LSTM`.
    """

    def __init__(self, input_size: int, hidden_size: int, layers: int) -> None:
        super().__init__()
        sizes = [input_size] + [hidden_size] * (layers - 1)
        self.cells = nn.ModuleList(nn.LSTMCell(s, hidden_size) for s in sizes)
        self.hidden_size = hidden_size

    @property
    def state_shapes(self) -> tuple[tuple[int, int], ...]:
        """Per state tensor: (layers, hidden), batch inserted at dim 1."""
        shape = (len(self.cells), self.hidden_size)
        return (shape, shape)

    def forward(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        h_prev, c_prev = state
        hs, cs = [], []
        inp = x
        for layer, cell in enumerate(self.cells):
            h, c = cell(inp, (h_prev[layer], c_prev[layer]))
            hs.append(h)
            cs.append(c)
            inp = h
        return inp, (torch.stack(hs), torch.stack(cs))


class FeedforwardController(nn.Module):
    """``layers`` fully connected layers with tanh; no state of its own (the state is ``()``)."""

    def __init__(self, input_size: int, hidden_size: int, layers: int) -> None:
        super().__init__()
        sizes = [input_size] + [hidden_size] * (layers - 1)
        self.layers = nn.ModuleList(nn.Linear(s, hidden_size) for s in sizes)
        self.hidden_size = hidden_size

    @property
    def state_shapes(self) -> tuple[tuple[int, int], ...]:
        return ()

    def forward(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x, ()
