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

Extreme values (tests/test_fuzz_equivalence.py), each widening derived from the numbers:

===========================  ==============================================================
case                         bound used, and why
===========================  ==============================================================
β > 50 (up to 1e4) in        the row above times β_max / 50. The softmax input is β·K and
content_address / address    K carries ~(W + 4)·u of rounding (u = 6e-8 in float32), so the
                             logit error, and the weights' relative error, grows linearly in
                             β; the table rows were set for β <= 50. At β = 1e4: float32
                             4e-3 abs / 2e-2 rel, float64 2e-8 / 2e-7 (observed float32
                             errors stay within the β-scaled bound over 6000 examples).
half dtypes with β > 50      max(half row, float32 row × β_max / 50): the internals are
                             float32, so once β amplifies their rounding past half's output
                             rounding, the float32 bound governs.
gradients                    GRAD_SCALE × the forward bound, absolute part taken relative to
                             max|reference gradient| of that tensor: the softmax and
                             sharpening backwards form g_i − Σ_j w_j g_j, so small entries
                             carry the absolute rounding of the largest terms.
zero-norm key (row) in       + 8·u·β_max·max‖M_i‖/ε·γ_max·max|upstream| absolute (‖k‖ for a
content_address / address    zero row, times H). By the zero-norm convention dK/dk = M_i/ε
                             (~1e8·‖M‖); with uniform shifts or gates the true gradient is
                             the cancellation of such terms down to ~0 (one example: 1e4
                             memory, β = 6.5e3, exact gradient 0, backends 0 vs 1.8e-2 in
                             float64 = 1.6e16 × 1.1e-16), so only a bound on their rounding
                             is meaningful. Elsewhere the term is 0 (no widening).
===========================  ==============================================================
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
