"""Shared by the reference ops' tests (tests/ops/test_reference_*.py): naive implementations
written with explicit Python loops straight from eqs. (2)-(9), random valid inputs and small
constructors of weightings and shifts."""

from __future__ import annotations

import math

import torch

from ntm_fast import reference as R
from ntm_fast.numerics import COSINE_EPS
from ntm_fast.op_table import OP_ARGS, draw

F64 = torch.float64
ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
LOW_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
EXACT = dict(atol=1e-15, rtol=1e-14)  # float64, a few roundings at most


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


# ---------------------------------------------------------------------------------------------
# Naive implementations: explicit loops over b, h, i, j, straight from the paper's equations.
# ---------------------------------------------------------------------------------------------


def naive_cosine(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    nu = math.sqrt(sum(a * a for a in u))
    nv = math.sqrt(sum(b * b for b in v))
    return dot / (nu * nv + COSINE_EPS)


def naive_content_address(memory, key, beta):
    B, N, _ = memory.shape
    H = key.shape[1]
    out = torch.zeros(B, H, N, dtype=F64)
    for b in range(B):
        for h in range(H):
            k = key[b, h].tolist()
            z = [beta[b, h].item() * naive_cosine(k, memory[b, i].tolist()) for i in range(N)]
            top = max(z)
            e = [math.exp(zi - top) for zi in z]
            total = sum(e)
            for i in range(N):
                out[b, h, i] = e[i] / total
    return out


def naive_interpolate(wc, wp, g):
    B, H, N = wc.shape
    out = torch.zeros(B, H, N, dtype=F64)
    for b in range(B):
        for h in range(H):
            gg = g[b, h].item()
            for i in range(N):
                out[b, h, i] = gg * wc[b, h, i].item() + (1 - gg) * wp[b, h, i].item()
    return out


def naive_shift(w, s):
    """Eq. (8): w̃(i) = Σ_j w(j) s(i - j), index arithmetic modulo N; s indexed by offset."""
    B, H, N = w.shape
    k = (s.shape[-1] - 1) // 2
    out = torch.zeros(B, H, N, dtype=F64)
    for b in range(B):
        for h in range(H):
            for i in range(N):
                acc = 0.0
                for j in range(N):
                    for d in range(-k, k + 1):
                        if (i - j - d) % N == 0:
                            acc += w[b, h, j].item() * s[b, h, d + k].item()
                out[b, h, i] = acc
    return out


def naive_sharpen(w, gamma):
    B, H, N = w.shape
    out = torch.zeros(B, H, N, dtype=F64)
    for b in range(B):
        for h in range(H):
            p = [w[b, h, i].item() ** gamma[b, h].item() for i in range(N)]
            total = sum(p)
            for i in range(N):
                out[b, h, i] = p[i] / total
    return out


def naive_read(memory, w):
    B, N, W = memory.shape
    H = w.shape[1]
    out = torch.zeros(B, H, W, dtype=F64)
    for b in range(B):
        for h in range(H):
            for m in range(W):
                out[b, h, m] = sum(w[b, h, i].item() * memory[b, i, m].item() for i in range(N))
    return out


def naive_write(memory, w, erase, add):
    """Eqs. (3)-(4): every head's erase, then every head's add."""
    B, N, W = memory.shape
    H = w.shape[1]
    out = torch.zeros(B, N, W, dtype=F64)
    for b in range(B):
        for i in range(N):
            for m in range(W):
                v = memory[b, i, m].item()
                for h in range(H):
                    v *= 1 - w[b, h, i].item() * erase[b, h, m].item()
                for h in range(H):
                    v += w[b, h, i].item() * add[b, h, m].item()
                out[b, i, m] = v
    return out


# ---------------------------------------------------------------------------------------------
# Random valid inputs
# ---------------------------------------------------------------------------------------------


ALL_ARGS = ("memory", "key", "beta", "gate", "shift", "gamma", "w_prev", "w_content", "w",
            "erase", "add")  # fmt: skip


def make_inputs(B=2, H=2, N=5, W=3, S=3, seed=0, dtype=F64) -> dict[str, torch.Tensor]:
    """Every argument (ntm_fast.op_table's factory) plus ``x``, a uniform-shift scalar in
    [-k, k]; β, the gate and erase kept off their bounds (β > 0, g and e in (0, 1)) so finite
    differences stay inside the domain."""
    g = torch.Generator().manual_seed(seed)
    ranges = dict(beta=(0.1, 5.1), gate=(0.05, 0.95), gamma=(1.0, 4.0), erase=(0.02, 0.98))
    d = draw(ALL_ARGS, B, H, N, W, S, generator=g, **ranges)
    d["x"] = (S // 2) * (2 * torch.rand(B, H, generator=g, dtype=F64) - 1)
    return {k: v.to(dtype) for k, v in d.items()}


ARGS = OP_ARGS


def call(op: str, inp: dict[str, torch.Tensor]) -> torch.Tensor:
    return getattr(R, op)(*(inp[a] for a in ARGS[op]))


def one_hot(n: int, i: int) -> torch.Tensor:
    v = torch.zeros(n, dtype=F64)
    v[i] = 1
    return v


def bh(v) -> torch.Tensor:
    """A single weighting / vector as (B=1, H=1, n)."""
    return torch.as_tensor(v, dtype=F64).reshape(1, 1, -1)


def offset_shift(S: int, d: int) -> torch.Tensor:
    """A one-hot shift distribution on offset d (index d + k)."""
    return bh(one_hot(S, d + (S - 1) // 2))
