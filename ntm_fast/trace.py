"""What :meth:`ntm_fast.ReferenceNTM.forward` records of each step: the detached
:class:`NTMTrace` for plots (``trace=True``), built here from the per-step records, and the
differentiable :class:`NTMHistory` of the states (``history=True``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


class NTMHistory(NamedTuple):
    """Every step's weightings and memory after the step, time-major (batch-first with
    ``batch_first``); differentiable, e.g. for a penalty on addressing or on writes."""

    weightings: Tensor  # (T, B, R + Wh, N): read heads first
    memory: Tensor  # (T, B, N, W)

    def batch_first(self) -> NTMHistory:
        return NTMHistory(*(t.transpose(0, 1) for t in self))


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
    R, Hw, N, W, S = sizes
    H, B = R + Hw, x.shape[1]
    if not records:
        z = x.new_zeros
        return NTMTrace(
            z(0, B, R, N), z(0, B, Hw, N), z(0, B, R, W), z(0, B, Hw, W), z(0, B, Hw, W),
            z(0, B, H, W), z(0, B, H), z(0, B, H), z(0, B, H, S), z(0, B, H),
        )  # fmt: skip
    w, reads, key, beta, gate, shift, gamma, erase, add = (
        torch.stack(item).detach() for item in zip(*records, strict=True)
    )
    return NTMTrace(
        read_weightings=w[:, :, :R], write_weightings=w[:, :, R:], read_vectors=reads,
        erase=erase, add=add, key=key, beta=beta, gate=gate, shift=shift, gamma=gamma,
    )  # fmt: skip
