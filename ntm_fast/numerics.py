"""Numerical constants and dtype rules shared by every backend (one home; docs/math.md#numerics).

Every backend (reference, Triton, native) must use these values so that they agree to
rounding error, not just "roughly".
"""

from __future__ import annotations

import torch

#: ε in the cosine similarity K = k·M / (‖k‖‖M‖ + ε) (eq. 6). It keeps a zero-norm key or
#: memory row finite (K = 0 there) and is far below the norms the model produces
#: (docs/math.md#content-addressing).
COSINE_EPS: float = 1e-8

#: Lower bound for the sharpening normaliser (eq. 9). Sharpening computes r = w̃ / max(w̃)
#: (an all-zero row divides by 1 instead), so Σ r^γ ≥ 1 for any row with a positive entry;
#: the bound only matters for invalid all-zero rows, where it yields zeros instead of NaN
#: (docs/math.md#sharpening, docs/math.md#all-zero-rows-in-sharpening).
SHARPEN_TINY: float = 1e-30

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def saturate(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast ``t`` to ``dtype``, clamping to its finite range instead of overflowing to inf.

    Gradients are computed in float32 and cast back to the input's dtype. Some exact
    gradients exceed float16's range (max 65504): the cosine's gradient at a zero-norm key
    or row is M_i/ε ≈ 1e8. Every backend saturates such values at ±finfo(dtype).max, the
    closest representable result, rather than returning inf; NaN stays NaN
    (docs/math.md#gradient-saturation).
    """
    if dtype in (torch.float16, torch.bfloat16) and t.dtype != dtype:
        big = torch.finfo(dtype).max
        t = t.clamp(-big, big)
    return t.to(dtype)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the ops compute in (all arithmetic, reductions included): float64 stays
    float64, everything else uses float32 (docs/math.md#compute-dtypes)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
