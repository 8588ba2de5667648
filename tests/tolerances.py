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

Extreme values (tests/ops/test_fuzz_equivalence.py), each widening derived from the numbers:

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
small- or zero-norm key      + 8·u·β·γ·max|upstream|·‖M_i‖/D_i per element of d/dkey
(row) in content_address /   (‖k‖/D_i, summed over heads, for d/dmemory), D_i = ‖k‖‖M_i‖+ε
address                      (:func:`cosine_allowance`). dK_i/dk = M_i/D_i − c·k is the
                             difference of two terms of size ‖M_i‖/D_i; when ‖k‖‖M_i‖ is
                             small (~1e8·‖M‖ at a zero norm, by the zero-norm convention) or
                             W = 1 (the cosine is ±1 and only the ε part of the gradient
                             survives) the result is far smaller than the terms and carries
                             their rounding. Examples: 1e4 memory, β = 6.5e3, exact gradient
                             0, backends 0 vs 1.8e-2 in float64 (= 1.6e16 × 1.1e-16); W = 1,
                             |M_i| = 6e-4, float32: exact 0.2992, reference 0.2988, native
                             0.2969. For well-conditioned inputs the term is ~1e-3 of the
                             scaled atol above, so it loosens nothing there.
===========================  ==============================================================
"""

import torch
from torch import Tensor

from ntm_fast.numerics import COSINE_EPS
from ntm_fast.op_table import OP_ARGS

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


def cosine_allowance(op: str, wrt: str, inputs: list[Tensor], upstream: Tensor) -> Tensor | float:
    """Absolute error allowed per element of d/d``wrt`` for the cancellation in the cosine's
    gradient (table above): 8 roundings u of the compute dtype times β·γ·max|upstream| times
    the size of the cancelling terms, ‖M_i‖/D_i for the key and Σ_h ‖k_h‖/D_hi for row i."""
    if op not in ("content_address", "address") or wrt not in ("key", "memory"):
        return 0.0
    a = {name: t.detach().double().cpu() for name, t in zip(OP_ARGS[op], inputs, strict=True)}
    key_norm = a["key"].norm(dim=-1)  # (B, H)
    row_norm = a["memory"].norm(dim=-1)  # (B, N)
    denom = key_norm[:, :, None] * row_norm[:, None, :] + COSINE_EPS  # (B, H, N)
    gamma = a["gamma"] if "gamma" in a else torch.ones_like(a["beta"])
    compute = torch.float64 if inputs[0].dtype == torch.float64 else torch.float32
    u = torch.finfo(compute).eps / 2
    per_head = 8 * u * a["beta"] * gamma * float(upstream.detach().abs().max())  # (B, H)
    if wrt == "key":
        terms = (row_norm[:, None, :] / denom).amax(-1)  # (B, H)
        allowance = per_head * terms
    else:
        allowance = (per_head[:, :, None] * key_norm[:, :, None] / denom).sum(1)  # (B, N)
    return allowance[..., None].to(inputs[0].device)


def assert_close_allowing(
    actual: Tensor, expected: Tensor, atol: float, rtol: float, what: str, extra=0.0
) -> None:
    """|a - e| <= atol·max(1, max|e|) + rtol·|e| + extra, elementwise (``extra`` may be a
    tensor broadcastable to ``expected``): the atol is relative to the tensor's largest
    entry, since gradients scale with β and sums of many terms."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, what
    a, e = actual.detach().double(), expected.detach().double()
    scale = max(1.0, float(e.abs().max())) if e.numel() else 1.0
    bound = atol * scale + rtol * e.abs() + extra
    bad = ~((a - e).abs() <= bound)  # NaN counts as bad
    if bad.any():
        i = int(bad.flatten().nonzero()[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {e.numel()} elements differ; first at flat index {i}: "
            f"{a.flatten()[i].item()} vs {e.flatten()[i].item()} "
            f"(allowed {bound.flatten()[i].item() if bound.dim() else float(bound):.3g})"
        )


# The whole-sequence native op (tests/model/test_native_sequence.py): T <= 12 steps of FastNTM on
# the CPU against ReferenceNTM (outputs, final state and BPTT gradients), compared with
# assert_close_allowing (atol relative to the tensor's largest entry). Both sides differ only in
# summation order, BLAS blocking and the op's vectorised exp/tanh, compounded over the steps:
# * float64: 1e-9 for outputs and gradients. Observed over 200 random configurations (the
#   hypothesis strategy there, both CPU ISA builds): <= 1e-15 outputs, <= 6e-14 gradients, so
#   1e-9 leaves > 1e4x margin and still catches a 1e-7 relative error in any one gradient.
# * float32: the per-op FORWARD row for outputs and GRAD_SCALE times it for gradients. The
#   per-op row assumed one op; the recurrence compounds the error, but the controller's
#   squashing (tanh, sigmoid, softmax weightings) keeps it from growing: over 400 random
#   configurations the worst was 6.6e-7 (outputs) and 3.4e-5 (gradients) relative to the
#   tensor's largest entry, using at most 1.2% and 7% of these bounds. β and γ stay moderate
#   there (random weights); extreme β/γ (test_native_sequence_errors.py) use these rows times
#   the β factor of the table above (γ = 50 used at most 6.5% of it, 20 seeds). Random weights
#   can still be ill-conditioned (hypothesis, session 38: dL/dx 0.5-1.2% apart, the float32
#   reference as far from float64), so float32 gradients also get twice the reference's own
#   error against float64 (test_native_sequence.own_rounding).
SEQUENCE = {
    torch.float64: dict(atol=1e-9, rtol=1e-9, g_atol=1e-9, g_rtol=1e-9),
    torch.float32: dict(
        atol=FORWARD[torch.float32]["atol"],
        rtol=FORWARD[torch.float32]["rtol"],
        g_atol=FORWARD[torch.float32]["atol"] * GRAD_SCALE,
        g_rtol=FORWARD[torch.float32]["rtol"] * GRAD_SCALE,
    ),
}
