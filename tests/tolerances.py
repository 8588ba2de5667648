"""One table of tolerances for comparing a fast backend with the reference.

Both sides compute in float32 (float64 for float64 inputs) and differ only in summation
order and in where intermediates are rounded, so the bounds are a few units in the last place
of the *output* dtype, scaled for the length of the reductions involved:

* float64: 1e-10 — reductions of at most ~1e5 terms in a different order; relative error
  ~1e5 * 2.2e-16 ≈ 2e-11, with margin.
* float32: 2e-5 abs / 1e-4 rel — cosine, softmax and sharpening chain several reductions;
  β·K amplifies K's rounding (~6e-8) by β (tests use β <= 50 for this row), and γ (<= 50)
  amplifies w̃'s relative error by γ in the sharpened output.
* float16: outputs rounded to half (unit roundoff 4.9e-4); the float32 internals can differ
  enough to flip one rounding, so allow ~2 ulp: 2e-3.
* bfloat16: unit roundoff 3.9e-3, same reasoning: 1.6e-2.

Gradients chain more reductions (the backward of the fused addressing runs four stage
backwards), so GRAD_SCALE widens the forward bound for them.
"""

import torch

FORWARD = {
    torch.float64: dict(atol=1e-10, rtol=1e-9),
    torch.float32: dict(atol=2e-5, rtol=1e-4),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}
GRAD_SCALE = 10.0


def forward_tol(dtype: torch.dtype) -> dict:
    return FORWARD[dtype]


def grad_tol(dtype: torch.dtype) -> dict:
    t = FORWARD[dtype]
    return dict(atol=t["atol"] * GRAD_SCALE, rtol=t["rtol"] * GRAD_SCALE)
