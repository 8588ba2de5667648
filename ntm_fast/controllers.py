"""Controller networks: an LSTM stack and a feedforward stack (paper section 3.4)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .model_checks import finite


class LSTMController(nn.Module):
    """A stack of ``layers`` LSTM cells; layer l > 0 sees the hidden state of layer l - 1.

    The state is ``(h, c)``, each `(layers, B, hidden)`, like :class:`torch.nn.LSTM`.
    ``forget_bias`` is added to every cell's forget-gate bias after torch's initialisation
    (which it leaves unchanged, so every other parameter is as drawn without it).
    """

    def __init__(
        self, input_size: int, hidden_size: int, layers: int, forget_bias: float = 0.0
    ) -> None:
        super().__init__()
        sizes = [input_size] + [hidden_size] * (layers - 1)
        self.cells = nn.ModuleList(nn.LSTMCell(s, hidden_size) for s in sizes)
        self.hidden_size = hidden_size
        forget_bias = finite("forget_bias", forget_bias)
        with torch.no_grad():  # torch's gate order: input, forget, cell, output
            for cell in self.cells:
                cell.bias_ih[hidden_size : 2 * hidden_size] += forget_bias

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
    """``layers`` fully connected layers with tanh; no state of its own (the state is ``()``).
    ``forget_bias`` must be 0 (it has no forget gate; the argument mirrors the LSTM's)."""

    def __init__(
        self, input_size: int, hidden_size: int, layers: int, forget_bias: float = 0.0
    ) -> None:
        if finite("forget_bias", forget_bias):
            raise ValueError(f"forget_bias: expected 0 for a feedforward controller (it has no "
                             f"forget gate), got {forget_bias}")  # fmt: skip
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
