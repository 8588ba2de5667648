"""The argument checks of the NTM modules (:class:`ntm_fast.ReferenceNTM` and
:class:`ntm_fast.FastNTM` share them): constructor sizes, the input, ``lengths`` and a given
``state``. Each error names the argument, what it got (shape, dtype, device) and what was
expected, in the message style of :mod:`ntm_fast.validation`."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .validation import describe


class NTMState(NamedTuple):
    """Everything an NTM carries from one step to the next. Batch is dim 0 except in
    ``controller``, whose tensors are `(layers, B, C)` like :class:`torch.nn.LSTM`'s."""

    memory: Tensor  # (B, N, W)
    read_vectors: Tensor  # (B, R, W)
    weightings: Tensor  # (B, R + Wh, N): read heads first, then write heads
    controller: tuple[Tensor, ...]  # LSTM: (h, c); feedforward: ()


def positive(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (bool refused), else TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def finite(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real number (bool refused), else TypeError or
    ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return float(value)


def one_of(name: str, value: object, options: tuple[str, ...]) -> str:
    """``value`` if it is one of ``options``, else a ValueError naming ``name`` and them."""
    if value not in options:
        raise ValueError(f"{name}: expected {' or '.join(map(repr, options))}, got {value!r}")
    return value  # type: ignore[return-value]


def check_input(x: object, input_size: int, batch_first: bool, like: Tensor) -> Tensor:
    """``x`` time-major `(T, B, input_size)`; ``like`` is a module parameter whose device and
    dtype the input must share (any floating dtype under autocast)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
    if x.dim() != 3 or x.shape[-1] != input_size:
        raise ValueError(
            f"x: expected shape {layout} with input_size = {input_size}, got {describe(x)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"x: expected a floating dtype like the module's, got {describe(x)}")
    if x.device != like.device:
        raise ValueError(f"x: expected device {like.device} (the module's), got {describe(x)}")
    if x.dtype != like.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"x: expected dtype {like.dtype} (the module's), got {describe(x)}")
    if x.shape[0 if batch_first else 1] == 0:
        raise ValueError(f"x: expected a batch of at least one sequence, got {describe(x)}")
    return x.transpose(0, 1) if batch_first else x


def lengths_mask(lengths: object, T: int, B: int, device: torch.device) -> Tensor | None:
    """`(T, B)` bool mask of active steps, or None when every step is active."""
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"lengths: expected a torch.Tensor, got {type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths: expected an integer dtype, got {describe(lengths)}")
    if lengths.shape != (B,):
        raise ValueError(
            f"lengths: expected shape ({B},) (one per sequence), got {describe(lengths)}"
        )
    if lengths.device != device:
        raise ValueError(f"lengths: expected device {device} (x's), got {describe(lengths)}")
    if bool(((lengths < 0) | (lengths > T)).any()):
        raise ValueError(
            f"lengths: expected values in [0, T = {T}], got min {int(lengths.min())}, "
            f"max {int(lengths.max())}"
        )
    return torch.arange(T, device=device).unsqueeze(1) < lengths.unsqueeze(0)


def check_state(
    state: object,
    x: Tensor,
    dtype: torch.dtype,
    shapes: dict[str, tuple[int, ...]],
    controller_shapes: list[tuple[int, ...]],
    controller_kind: str,
) -> NTMState:
    """A given ``state`` as an :class:`NTMState`: ``shapes`` maps memory, read_vectors and
    weightings to their expected shapes, ``controller_shapes`` gives the controller's."""
    if not isinstance(state, tuple) or len(state) != 4:
        raise TypeError(f"state: expected an NTMState, got {type(state).__name__}")
    state = NTMState(*state)
    for name, shape in shapes.items():
        _check_state_tensor(f"state.{name}", getattr(state, name), shape, x, dtype)
    if not isinstance(state.controller, tuple) or len(state.controller) != len(controller_shapes):
        raise ValueError(
            f"state.controller: expected {len(controller_shapes)} tensors for a "
            f"{controller_kind} controller, got {state.controller!r:.80}"
        )
    for i, shape in enumerate(controller_shapes):
        _check_state_tensor(f"state.controller[{i}]", state.controller[i], shape, x, dtype)
    return state


def _check_state_tensor(
    name: str, t: object, shape: tuple[int, ...], x: Tensor, dtype: torch.dtype
) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(
            f"{name}: expected shape {shape} (from this module's configuration and the "
            f"batch size), got {describe(t)}; was the state made by a differently "
            f"configured module?"
        )
    if t.device != x.device:
        raise ValueError(f"{name}: expected device {x.device} (x's), got {describe(t)}")
    if t.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{name}: expected dtype {dtype} (the module's), got {describe(t)}")
