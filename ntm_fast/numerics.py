"""Numerical constants and dtype rules shared by every backend (one home, see ntm-math.md).

Every backend (reference, Triton, native) must use these values so that they agree to
rounding error, not just "roughly".
"""

from __future__ import annotations

import torch

#: ε in the cosine similarity K = k·M / (‖k‖‖M‖ + ε) (eq. 6). It keeps a zero-norm key or
#: memory row finite (K = 0 there) and is far below the norms the model produces.
COSINE_EPS: float = 1e-8

#: Lower bound for the sharpening normaliser and the per-row maximum used to rescale w̃
#: (eq. 9). Sharpening computes r = w̃ / max(w̃) so that Σ r^γ ≥ 1 and never underflows; the
#: bound only matters for invalid all-zero weightings, where it yields zeros instead of NaN.
SHARPEN_TINY: float = 1e-30

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype reductions run in: float64 stays float64, everything else uses float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32
