"""What :meth:`ntm_fast.ReferenceNTM.forward` records of each step: the detached
:class:`NTMTrace` for plots (``trace=True``) and the differentiable :class:`NTMHistory` of the
states and head parameters (``history=True``), both built here from the per-step records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .heads import HeadParams


class NTMHistory(NamedTuple):
    """Every step's weightings and memory after the step and its activated head parameters,
    time-major (batch-first with ``batch_first``); differentiable, e.g. for a penalty on
    addressing or on writes. With ``lengths``, the head parameters of steps at or past a
    sequence's length are 0 (no step ran; the weightings and memory are the kept state)."""

    weightings: Tensor  # (T, B, R + Wh, N): read heads first
    memory: Tensor  # (T, B, N, W)
    heads: HeadParams  # each (T, B, ...): key (T, B, R + Wh, W), ..., add (T, B, Wh, W)

    def batch_first(self) -> NTMHistory:
        """The same history with the first two dimensions swapped (its own inverse)."""
        swap = lambda t: t.transpose(0, 1)  # noqa: E731
        return NTMHistory(
            swap(self.weightings), swap(self.memory), HeadParams(*map(swap, self.heads))
        )


def cat_history(first: NTMHistory, then: NTMHistory) -> NTMHistory:
    """The history of two consecutive runs (the second continuing the first's state) as one,
    time-major."""
    cat = lambda a, b: torch.cat([a, b])  # noqa: E731
    heads = HeadParams(*map(cat, first.heads, then.heads))
    return NTMHistory(cat(first.weightings, then.weightings), cat(first.memory, then.memory), heads)


def zero_ended(heads: HeadParams, active: Tensor) -> HeadParams:
    """``heads`` with the entries of ended sequences set to 0 (and so their gradients);
    ``active`` `(B,)` or `(T, B)` bool, the leading dimensions of every field."""
    return HeadParams(
        *(
            torch.where(active.view(*active.shape, *[1] * (t.dim() - active.dim())), t, 0)
            for t in heads
        )
    )


def make_history(
    records: list[tuple[Tensor, Tensor, HeadParams]], x: Tensor, sizes: tuple[int, ...]
) -> NTMHistory:
    """Stack the per-step ``(weightings, memory, head params)`` records, differentiable;
    ``sizes`` as for :func:`make_trace`."""
    if not records:
        R, Hw, N, W, _ = sizes
        z = x.new_zeros
        return NTMHistory(z(0, x.shape[1], R + Hw, N), z(0, x.shape[1], N, W), _no_heads(x, sizes))
    w, memory, heads = zip(*records, strict=True)
    stacked = HeadParams(*(torch.stack(p) for p in zip(*heads, strict=True)))
    return NTMHistory(torch.stack(w), torch.stack(memory), stacked)


def _no_heads(x: Tensor, sizes: tuple[int, ...]) -> HeadParams:
    """Head parameters of no steps: `(0, B, ...)` each."""
    R, Hw, _, W, S = sizes
    H, B, z = R + Hw, x.shape[1], x.new_zeros
    return HeadParams(
        z(0, B, H, W),
        z(0, B, H),
        z(0, B, H),
        z(0, B, H, S),
        z(0, B, H),
        z(0, B, Hw, W),
        z(0, B, Hw, W),
    )


@dataclass
class NTMTrace:
    """Per-step record for plotting memory use (paper Figs. 6, 9, 12); time-major `(T, B, ...)`."""

    read_weightings: Tensor  # (T, B, R, N)
    write_weightings: Tensor  # (T, B, Wh, N)
    read_vectors: Tensor  # (T, B, R, W)
    erase: Tensor  # (T, B, Wh, W)
    add: Tensor  # (T, B, Wh, W)
    key: Tensor  # (T, B, R + Wh, W)
    beta: Tensor  # (T, B, R + Wh)
    gate: Tensor  # (T, B, R + Wh)
    shift: Tensor  # (T, B, R + Wh, S)
    gamma: Tensor  # (T, B, R + Wh)


def make_trace(
    records: list[tuple[Tensor, ...]], x: Tensor, sizes: tuple[int, int, int, int, int]
) -> NTMTrace:
    """Stack the per-step ``(weightings, read_vectors, *head params)`` records, detached;
    ``sizes`` is ``(R, Wh, N, W, S)``. ``x`` `(T, B, ...)` gives B, dtype and device when
    there are no steps."""
    R, Hw, N, W, _ = sizes
    if not records:
        B, z = x.shape[1], x.new_zeros
        h = _no_heads(x, sizes)
        return NTMTrace(
            z(0, B, R, N), z(0, B, Hw, N), z(0, B, R, W), h.erase, h.add,
            h.key, h.beta, h.gate, h.shift, h.gamma,
        )  # fmt: skip
    w, reads, key, beta, gate, shift, gamma, erase, add = (
        torch.stack(item).detach() for item in zip(*records, strict=True)
    )
    return NTMTrace(
        read_weightings=w[:, :, :R], write_weightings=w[:, :, R:], read_vectors=reads,
        erase=erase, add=add, key=key, beta=beta, gate=gate, shift=shift, gamma=gamma,
    )  # fmt: skip
