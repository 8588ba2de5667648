"""Head parameters: how the controller output is split into each head's addressing and
write parameters, and the activations that make them valid (one home for both).

One linear layer emits every head's raw parameters at once, grouped by kind so each group
reshapes to `(B, heads, ...)` without copies. Heads are ordered read heads first, then write
heads. Activations (the paper leaves them open; docs/math.md#controller-and-heads, backward in
docs/math-backward.md#activations-backward):

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

# The activations' backwards as torch's own kernels (one call each, from the outputs or, for
# softplus with F.softplus's beta = 1 and threshold = 20, from the input).
tanh_backward = torch.ops.aten.tanh_backward.default
sigmoid_backward = torch.ops.aten.sigmoid_backward.default
_softplus_backward = torch.ops.aten.softplus_backward.default


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

    def split(self, raw: Tensor) -> dict[str, Tensor]:
        """`(B, total)` raw outputs as a view per group, shaped `(B, heads, ...)`."""
        B = raw.shape[0]
        pieces = raw.split(self.sizes, -1)
        shapes = self.groups.values()
        return {
            name: p.reshape(B, *shape)
            for name, p, shape in zip(self.groups, pieces, shapes, strict=True)
        }

    def activate(self, raw: Tensor) -> HeadParams:
        """Split `(B, total)` raw outputs and apply each parameter's activation."""
        parts = self.split(raw)
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

    def activation_grads(self, raw: Tensor, p: HeadParams, grad: HeadParams) -> Tensor:
        """Backward of :meth:`activate`: d loss / d raw from d loss / d each parameter in
        ``grad``, given the raw outputs and the activated parameters ``p`` they produced."""
        B = raw.shape[0]
        parts = self.split(raw)
        if self.shift_mode == "softmax":
            d_shift = p.shift * (grad.shift - (grad.shift * p.shift).sum(-1, keepdim=True))
        else:  # s = uniform_shift(k·tanh(raw)): ds_j/dx = [j = ⌊x⌋+1] - [j = ⌊x⌋]
            k = (self.shifts - 1) // 2
            t = torch.tanh(parts["shift"][..., 0:1])
            lower = torch.floor((k * t).clamp(-k, k))
            offsets = torch.arange(-k, k + 1, device=raw.device, dtype=raw.dtype)
            slope = (offsets == lower + 1).to(raw.dtype) - (offsets == lower).to(raw.dtype)
            d_x = (grad.shift * slope).sum(-1, keepdim=True)
            d_shift = d_x * k * (1 - t * t)
        grads = (
            tanh_backward(grad.key, p.key),
            _softplus_backward(grad.beta, parts["beta"], 1.0, 20.0),
            sigmoid_backward(grad.gate, p.gate),
            d_shift,
            _softplus_backward(grad.gamma, parts["gamma"], 1.0, 20.0),
            sigmoid_backward(grad.erase, p.erase),
            tanh_backward(grad.add, p.add),
        )
        return torch.cat([g.reshape(B, -1) for g in grads], dim=-1)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
