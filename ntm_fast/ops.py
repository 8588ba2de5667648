"""The memory ops with a ``backend=`` switch: ``"reference"``, ``"triton"``, ``"native"``
or ``"auto"`` (see :mod:`ntm_fast.backends` for what ``auto`` picks).

Every backend validates its arguments with :mod:`ntm_fast.validation`, so all reject the same
bad inputs with the same messages, and all follow the conventions of :mod:`ntm_fast.reference`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import backends

__all__ = [
    "address",
    "content_address",
    "interpolate",
    "read",
    "sharpen",
    "shift_convolve",
    "write",
]


def _device(name: str, t: object) -> torch.device:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    return t.device


def content_address(memory: Tensor, key: Tensor, beta: Tensor, *, backend: str = "auto") -> Tensor:
    """See :func:`ntm_fast.reference.content_address`."""
    return backends.get(backend, _device("memory", memory)).content_address(memory, key, beta)


def interpolate(
    w_content: Tensor, w_prev: Tensor, gate: Tensor, *, backend: str = "auto"
) -> Tensor:
    """See :func:`ntm_fast.reference.interpolate`."""
    mod = backends.get(backend, _device("w_content", w_content))
    return mod.interpolate(w_content, w_prev, gate)


def shift_convolve(w: Tensor, shift: Tensor, *, backend: str = "auto") -> Tensor:
    """See :func:`ntm_fast.reference.shift_convolve`."""
    return backends.get(backend, _device("w", w)).shift_convolve(w, shift)


def sharpen(w: Tensor, gamma: Tensor, *, backend: str = "auto") -> Tensor:
    """See :func:`ntm_fast.reference.sharpen`."""
    return backends.get(backend, _device("w", w)).sharpen(w, gamma)


def address(
    memory: Tensor,
    key: Tensor,
    beta: Tensor,
    gate: Tensor,
    shift: Tensor,
    gamma: Tensor,
    w_prev: Tensor,
    *,
    backend: str = "auto",
) -> Tensor:
    """See :func:`ntm_fast.reference.address`."""
    mod = backends.get(backend, _device("memory", memory))
    return mod.address(memory, key, beta, gate, shift, gamma, w_prev)


def read(memory: Tensor, w: Tensor, *, backend: str = "auto") -> Tensor:
    """See :func:`ntm_fast.reference.read`."""
    return backends.get(backend, _device("memory", memory)).read(memory, w)


def write(
    memory: Tensor, w: Tensor, erase: Tensor, add: Tensor, *, backend: str = "auto"
) -> Tensor:
    """See :func:`ntm_fast.reference.write`."""
    return backends.get(backend, _device("memory", memory)).write(memory, w, erase, add)
