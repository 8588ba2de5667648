"""Argument checking for every public op, shared by all backends.

Each backend calls the same ``check_*`` function before doing any work, so every backend
rejects the same bad input with the same message: the argument's name, what was received
(shape, dtype, device) and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .numerics import FLOAT_DTYPES


def describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}, device {t.device}"


def _tensor(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a floating dtype (float16, bfloat16, float32 or float64), "
            f"got {describe(t)}"
        )
    return t


def _shape(name: str, t: torch.Tensor, expected: Sequence[int | None], spec: str) -> None:
    """Check ``t.shape`` against ``expected`` (None = any size >= 1); ``spec`` names the dims.

    An empty free dimension (B, H, N, W or S = 0) is named: ``"key: expected H >= 1, ..."``.
    """
    ok = t.dim() == len(expected) and all(
        (e is None and s >= 1) or s == e for s, e in zip(t.shape, expected, strict=True)
    )
    if not ok:
        if t.dim() == len(expected):
            letters = spec.strip("()").split(", ")
            for s, e, letter in zip(t.shape, expected, letters, strict=True):
                if e is None and s < 1:
                    raise ValueError(
                        f"{name}: expected {letter} >= 1 (no dimension of {spec} may be "
                        f"empty), got {describe(t)}"
                    )
        want = ", ".join("*" if e is None else str(e) for e in expected)
        raise ValueError(f"{name}: expected shape {spec} = ({want}), got {describe(t)}")


def _same(names_tensors: Sequence[tuple[str, torch.Tensor]]) -> None:
    """All tensors share the first one's dtype and device."""
    first_name, first = names_tensors[0]
    for name, t in names_tensors[1:]:
        if t.device != first.device:
            raise ValueError(
                f"{name}: expected device {first.device} (the device of {first_name}), "
                f"got {describe(t)}"
            )
        if t.dtype != first.dtype:
            raise TypeError(
                f"{name}: expected dtype {first.dtype} (the dtype of {first_name}), "
                f"got {describe(t)}"
            )


def check_memory(memory: object) -> tuple[int, int, int]:
    """memory: (B, N, W). Returns (B, N, W)."""
    m = _tensor("memory", memory)
    _shape("memory", m, (None, None, None), "(B, N, W)")
    return tuple(m.shape)  # type: ignore[return-value]


def check_weighting(name: str, w: object, B: int, N: int, H: int | None = None) -> int:
    """A weighting (B, H, N). Returns H."""
    t = _tensor(name, w)
    _shape(name, t, (B, H, N), "(B, H, N)")
    return t.shape[1]


def check_per_head(name: str, t: object, B: int, H: int, last: int | None = -1) -> None:
    """A per-head scalar (B, H) when ``last == -1``, else a per-head vector (B, H, last)."""
    x = _tensor(name, t)
    if last == -1:
        _shape(name, x, (B, H), "(B, H)")
    else:
        _shape(name, x, (B, H, last), "(B, H, W)")


def check_shift(shift: object, B: int, H: int, N: int) -> int:
    """shift: (B, H, S) with S odd and 1 <= S <= N. Returns S."""
    s = _tensor("shift", shift)
    _shape("shift", s, (B, H, None), "(B, H, S)")
    S = s.shape[2]
    if S % 2 == 0 or S > N:
        raise ValueError(
            f"shift: expected an odd number of shifts S (offsets -k..k, S = 2k+1) with "
            f"1 <= S <= N = {N}, got {describe(s)}"
        )
    return S


def check_content_address(memory, key, beta) -> tuple[int, int, int, int]:
    """Returns (B, H, N, W)."""
    B, N, W = check_memory(memory)
    k = _tensor("key", key)
    _shape("key", k, (B, None, W), "(B, H, W)")
    H = k.shape[1]
    check_per_head("beta", beta, B, H)
    _same([("memory", memory), ("key", key), ("beta", beta)])
    return B, H, N, W


def check_interpolate(w_content, w_prev, gate) -> None:
    wc = _tensor("w_content", w_content)
    _shape("w_content", wc, (None, None, None), "(B, H, N)")
    B, H, N = wc.shape
    check_weighting("w_prev", w_prev, B, N, H)
    check_per_head("gate", gate, B, H)
    _same([("w_content", w_content), ("w_prev", w_prev), ("gate", gate)])


def check_shift_convolve(w, shift) -> int:
    """Returns S."""
    t = _tensor("w", w)
    _shape("w", t, (None, None, None), "(B, H, N)")
    B, H, N = t.shape
    S = check_shift(shift, B, H, N)
    _same([("w", w), ("shift", shift)])
    return S


def check_sharpen(w, gamma) -> None:
    t = _tensor("w", w)
    _shape("w", t, (None, None, None), "(B, H, N)")
    B, H, _ = t.shape
    check_per_head("gamma", gamma, B, H)
    _same([("w", w), ("gamma", gamma)])


def check_address(memory, key, beta, gate, shift, gamma, w_prev) -> tuple[int, int, int, int, int]:
    """Returns (B, H, N, W, S)."""
    B, H, N, W = check_content_address(memory, key, beta)
    check_per_head("gate", gate, B, H)
    S = check_shift(shift, B, H, N)
    check_per_head("gamma", gamma, B, H)
    check_weighting("w_prev", w_prev, B, N, H)
    _same(
        [("memory", memory), ("gate", gate), ("shift", shift), ("gamma", gamma), ("w_prev", w_prev)]
    )
    return B, H, N, W, S


def check_read(memory, w) -> tuple[int, int, int, int]:
    """Returns (B, H, N, W)."""
    B, N, W = check_memory(memory)
    H = check_weighting("w", w, B, N)
    _same([("memory", memory), ("w", w)])
    return B, H, N, W


def check_write(memory, w, erase, add) -> tuple[int, int, int, int]:
    """Returns (B, H, N, W)."""
    B, N, W = check_memory(memory)
    H = check_weighting("w", w, B, N)
    check_per_head("erase", erase, B, H, W)
    check_per_head("add", add, B, H, W)
    _same([("memory", memory), ("w", w), ("erase", erase), ("add", add)])
    return B, H, N, W


def autocast_enabled(device: torch.device) -> bool:
    """``torch.is_autocast_enabled(device.type)``, but False (instead of a RuntimeError) for a
    device type that has no autocast, such as ``meta``: a module on the meta device then takes
    its ordinary path (FastNTM with ``backend="auto"`` falls back to the reference ops, as
    documented in :mod:`ntm_fast.backends`; an explicit fast backend names why it cannot run).
    """
    kind = torch.device(device).type
    return torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind)
