"""Head parameters: how the controller output is split into each head's addressing and
write parameters, and the activations that make them valid (one home for both).

One linear layer emits every head's raw parameters at once, grouped by kind so each group
reshapes to `(B, heads, ...)` without copies. Heads are ordered read heads first, then write
heads. Activations (the paper leaves them open; ntm-math.md lists the usual ones):

==========  =================  ======================================================
parameter   activation         range
==========  =================  ======================================================
key k       tanh               (-1, 1)^W, like the adds it is compared with
strength β  softplus           β >= 0
gate g      sigmoid            (0, 1)
shift s     softmax over 2k+1  a distribution over offsets -k..k  (shift_mode="softmax")
            k·tanh(x), then    the paper's second form: a scalar x in (-k, k) read as
            uniform_shift      the lower bound of a width-one uniform distribution
                               (shift_mode="uniform")
sharpen γ   1 + softplus       γ >= 1
erase e     sigmoid            (0, 1)^W
add a       tanh               (-1, 1)^W, keeps memory bounded on long sequences
==========  =================  ======================================================
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .reference import uniform_shift


class HeadParams(NamedTuple):
    """Activated head parameters for one step; H = read_heads + write_heads."""

    key: Tensor  # (B, H, W)
    beta: Tensor  # (B, H)
    gate: Tensor  # (B, H)
    shift: Tensor  # (B, H, S)
    gamma: Tensor  # (B, H)
    erase: Tensor  # (B, write_heads, W)
    add: Tensor  # (B, write_heads, W)


class HeadLayout:
    """Sizes and offsets of each group of raw head parameters in the controller's output."""

    def __init__(
        self, read_heads: int, write_heads: int, width: int, shift_range: int, shift_mode: str
    ) -> None:
        self.read_heads, self.write_heads, self.width = read_heads, write_heads, width
        self.heads = read_heads + write_heads
        self.shifts = 2 * shift_range + 1
        self.shift_mode = shift_mode
        shift_raw = self.shifts if shift_mode == "softmax" else 1
        H, Hw = self.heads, write_heads
        self.groups = {
            "key": (H, width),
            "beta": (H,),
            "gate": (H,),
            "shift": (H, shift_raw),
            "gamma": (H,),
            "erase": (Hw, width),
            "add": (Hw, width),
        }
        self.sizes = [_numel(shape) for shape in self.groups.values()]
        self.total = sum(self.sizes)

    def activate(self, raw: Tensor) -> HeadParams:
        """Split `(B, total)` raw outputs and apply each parameter's activation."""
        B = raw.shape[0]
        parts = dict(
            zip(
                self.groups,
                (
                    p.reshape(B, *shape)
                    for p, shape in zip(
                        raw.split(self.sizes, -1), self.groups.values(), strict=True
                    )
                ),
                strict=True,
            )
        )
        if self.shift_mode == "softmax":
            shift = torch.softmax(parts["shift"], dim=-1)
        else:
            k = (self.shifts - 1) // 2
            shift = uniform_shift(k * torch.tanh(parts["shift"][..., 0]), self.shifts)
        return HeadParams(
            key=torch.tanh(parts["key"]),
            beta=F.softplus(parts["beta"]),
            gate=torch.sigmoid(parts["gate"]),
            shift=shift,
            gamma=1 + F.softplus(parts["gamma"]),
            erase=torch.sigmoid(parts["erase"]),
            add=torch.tanh(parts["add"]),
        )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
