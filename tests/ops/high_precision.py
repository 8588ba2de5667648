"""The fused addressing's gradient in 60-digit arithmetic (mpmath, which torch already needs
through sympy): the ground truth where float64 cannot give one to the tests' usual tolerance.

At a zero-norm key or memory row the cosine's gradient is amplified by β/ε (up to 1e4/1e-8,
docs/math.md): float64 rounding in ∂L/∂z then moves that gradient by percents in the
reference and the kernels alike, each in its own evaluation order. A fast backend is right
there when it is as close to the truth as the float64 reference is (see
test_backend_extremes.test_hypothesis_edge_values).
"""

from __future__ import annotations

import mpmath as mp
import torch

from ntm_fast import numerics

_DPS = 60
_STEP = mp.mpf("1e-30")  # central differences: error O(step²) relative, far below float64's


def _loss_of_head(M, k, beta, gate, shift, gamma, w_prev, g):
    """Σ_i g_i · address(...)_i for one (batch, head), eqs. (5)-(9), all in mpmath."""
    eps = mp.mpf(numerics.COSINE_EPS)
    knorm = mp.sqrt(mp.fsum(x * x for x in k))
    z = []
    for row in M:
        dot = mp.fsum(a * c for a, c in zip(k, row, strict=True))
        z.append(beta * dot / (knorm * mp.sqrt(mp.fsum(x * x for x in row)) + eps))
    top = max(z)
    e = [mp.exp(v - top) for v in z]
    total = mp.fsum(e)
    wg = [gate * x / total + (1 - gate) * p for x, p in zip(e, w_prev, strict=True)]
    N, S = len(M), len(shift)
    half = (S - 1) // 2
    ws = [mp.fsum(shift[j] * wg[(i - (j - half)) % N] for j in range(S)) for i in range(N)]
    p = [x**gamma for x in ws]
    norm = mp.fsum(p)
    return mp.fsum(gi * pi / norm for gi, pi in zip(g, p, strict=True))


def _mp(t: torch.Tensor) -> list:
    return [mp.mpf(float(v)) for v in t.tolist()] if t.dim() == 1 else [_mp(r) for r in t]


def address_row_grad(args: list[torch.Tensor], g: torch.Tensor, which: str, b: int, row: int):
    """d/dx of Σ g · address(*args) for x = key[b, row] (``which == "key"``) or memory[b, row]
    (``"memory"``), as a float64 CPU tensor of W values."""
    with mp.workdps(_DPS):
        memory, key, beta, gate, shift, gamma, w_prev = (_mp(a[b].double().cpu()) for a in args)
        heads = [row] if which == "key" else range(len(key))
        gb = _mp(g[b].double().cpu())

        def loss(M, K):
            return mp.fsum(_loss_of_head(M, K[h], beta[h], gate[h], shift[h], gamma[h],
                                         w_prev[h], gb[h]) for h in heads)  # fmt: skip

        out = []
        for j in range(len(key[0])):
            vals = []
            for sign in (1, -1):
                M = [list(r) for r in memory]
                K = [list(r) for r in key]
                target = K[row] if which == "key" else M[row]
                target[j] += sign * _STEP
                vals.append(loss(M, K))
            out.append(float((vals[0] - vals[1]) / (2 * _STEP)))
    return torch.tensor(out, dtype=torch.float64)
