"""Output allocation for the fast backends, with NaN poisoning for tests.

Every kernel output is allocated here. With poisoning on (``NTM_FAST_POISON_OUTPUTS=1`` or
:func:`set_poison`), fresh buffers are filled with NaN, so an element a kernel forgets to
write shows up as NaN in the equivalence tests instead of passing by luck.
"""

from __future__ import annotations

import os

import torch

_poison = os.environ.get("NTM_FAST_POISON_OUTPUTS", "0") == "1"


def set_poison(enabled: bool) -> None:
    global _poison
    _poison = enabled


def poison_enabled() -> bool:
    return _poison


def empty(shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype, device=device)
    if _poison:
        out.fill_(float("nan"))
    return out
