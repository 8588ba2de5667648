"""Shared Triton helpers: launch sizing and the per-row building blocks of the NTM ops.

Every helper works on one row (one batch element and head) of length N, walking it in tiles
of ``BN`` slots, so any N is handled; the kernels in the sibling files compose them. Values
are loaded and converted to the compute dtype ``CDT`` (float32, or float64 for float64
inputs) right after the load, and all reductions run in ``CDT``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast.numerics import COSINE_EPS, SHARPEN_TINY

#: Largest tile over N. Rows longer than this are walked in several tiles; tests lower it
#: (``set_max_block_n``) to exercise the tiled path with small N under the interpreter.
MAX_BLOCK_N = 1024
#: Target number of elements in a 2-D (N, W) tile.
TILE_ELEMS = 8192

EPS = tl.constexpr(COSINE_EPS)
TINY = tl.constexpr(SHARPEN_TINY)
#: Every clamp here propagates NaN (NaN in, NaN out on every backend, as in the reference):
#: the default of tl.maximum/minimum/clamp (maxnum/minnum) silently drops it.
NAN = tl.constexpr(tl.PropagateNan.ALL)


def set_max_block_n(n: int) -> int:
    """Set the largest tile over N (a power of two >= 1); returns the previous value."""
    global MAX_BLOCK_N
    if n < 1 or n & (n - 1):
        raise ValueError(f"max block n: expected a power of two >= 1, got {n}")
    old, MAX_BLOCK_N = MAX_BLOCK_N, n
    return old


def block_n(N: int) -> int:
    return min(triton.next_power_of_2(N), MAX_BLOCK_N)


def block_w(W: int, bn: int) -> int:
    return max(1, min(triton.next_power_of_2(W), TILE_ELEMS // bn))


def num_warps(elems: int) -> int:
    return 8 if elems >= 4096 else 4 if elems >= 512 else 2


def launch(elems: int) -> dict[str, int]:
    """Launch options for a block over ``elems`` tile elements: its warps and ``maxnreg``, the
    most registers per thread the block can hold (65536 per SM, 255 per thread). Without that
    bound ptxas aims for occupancy and spills a few bytes far below the register file's limit
    (64-80 registers in the 8-warp backward kernels, 32 in 2-warp ones;
    docs/gpu-resources.md), where the one-block-per-row kernels gain nothing from occupancy."""
    w = num_warps(elems)
    per_thread = 65536 // (32 * w)
    return {"num_warps": w, "maxnreg": min(255, per_thread - per_thread % 8)}


def tl_compute_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def torch_compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@triton.jit
def to_grad(x, p):
    """``x`` cast for a store through pointer ``p``, saturating at ±max of float16/bfloat16
    instead of overflowing to inf (ntm_fast.numerics.saturate: gradients such as the cosine's
    at a zero-norm key, ~1/ε, exceed float16's range). NaN stays NaN."""
    if p.dtype.element_ty == tl.float16:
        x = tl.clamp(x, -65504.0, 65504.0, propagate_nan=NAN)
    if p.dtype.element_ty == tl.bfloat16:
        x = tl.clamp(x, -3.3895313892515355e38, 3.3895313892515355e38, propagate_nan=NAN)
    return x.to(p.dtype.element_ty)


@triton.jit
def key_norm(p_k, W, BW: tl.constexpr, CDT: tl.constexpr):
    """‖k‖ of one key of length W."""
    acc = tl.zeros([BW], dtype=CDT)
    for w0 in range(0, W, BW):
        o_w = w0 + tl.arange(0, BW)
        b_k = tl.load(p_k + o_w, mask=o_w < W, other=0).to(CDT)
        acc += b_k * b_k
    return tl.sqrt(tl.sum(acc, 0))


@triton.jit
def cosine_tile(p_m, p_k, o_n, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr):
    """``(k·M_i, ‖M_i‖)`` for the rows ``o_n`` of one memory ``p_m`` (N, W)."""
    m_n = o_n < N
    dot = tl.zeros([BN], dtype=CDT)
    sq = tl.zeros([BN], dtype=CDT)
    for w0 in range(0, W, BW):
        o_w = w0 + tl.arange(0, BW)
        m_w = o_w < W
        b_k = tl.load(p_k + o_w, mask=m_w, other=0).to(CDT)
        p = p_m + o_n[:, None] * W + o_w[None, :]
        b_m = tl.load(p, mask=m_n[:, None] & m_w[None, :], other=0).to(CDT)
        dot += tl.sum(b_m * b_k[None, :], 1)
        sq += tl.sum(b_m * b_m, 1)
    return dot, tl.sqrt(sq)


@triton.jit
def content_stats(
    p_m, p_k, p_sk, beta, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr
):
    """Cosine similarities K of one key against all rows, stored to ``p_sk`` (N,), and the
    softmax statistics of ``β K``: returns ``(‖k‖, max_i βK_i, Σ_i exp(βK_i - max))``."""
    nk = key_norm(p_k, W, BW, CDT)
    m = tl.full([], float("-inf"), CDT)
    s = tl.zeros([], dtype=CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        dot, nm = cosine_tile(p_m, p_k, o_n, N, W, BN, BW, CDT)
        b_K = dot / (nk * nm + EPS)
        tl.store(p_sk + o_n, b_K, mask=m_n)
        b_z = tl.where(m_n, beta * b_K, float("-inf"))
        m_new = tl.maximum(m, tl.max(b_z, 0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(b_z - m_new), 0)
        m = m_new
    return nk, m, s


@triton.jit
def row_max(p_x, N, BN: tl.constexpr, CDT: tl.constexpr):
    acc = tl.full([BN], float("-inf"), CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        acc = tl.maximum(acc, tl.load(p_x + o_n, mask=o_n < N, other=float("-inf")).to(CDT))
    return tl.max(acc, 0)


@triton.jit
def shift_tile(p_src, p_s, o_n, N, S, BN: tl.constexpr, CDT: tl.constexpr):
    """``w̃_i = Σ_j s_j w_{(i - (j - k)) mod N}`` for the slots ``o_n`` (eq. 8)."""
    k = (S - 1) // 2
    m_n = o_n < N
    acc = tl.zeros([BN], dtype=CDT)
    for j in range(S):
        b_s = tl.load(p_s + j).to(CDT)
        acc += b_s * tl.load(p_src + (o_n + N + k - j) % N, mask=m_n, other=0).to(CDT)
    return acc


@triton.jit
def shift_bwd_tile(p_g, p_s, o_n, N, S, BN: tl.constexpr, CDT: tl.constexpr):
    """``∂L/∂w_i = Σ_j s_j ḡ_{(i + (j - k)) mod N}`` for the slots ``o_n``."""
    k = (S - 1) // 2
    m_n = o_n < N
    acc = tl.zeros([BN], dtype=CDT)
    for j in range(S):
        b_s = tl.load(p_s + j).to(CDT)
        acc += b_s * tl.load(p_g + (o_n + N + j - k) % N, mask=m_n, other=0).to(CDT)
    return acc


@triton.jit
def shift_grad_s(p_w, p_g, p_gs, N, S, BN: tl.constexpr, CDT: tl.constexpr):
    """``∂L/∂s_j = Σ_i ḡ_i w_{(i - (j - k)) mod N}`` for every shift j, stored to ``p_gs``."""
    k = (S - 1) // 2
    for j in range(S):
        acc = tl.zeros([BN], dtype=CDT)
        for n0 in range(0, N, BN):
            o_n = n0 + tl.arange(0, BN)
            m_n = o_n < N
            b_g = tl.load(p_g + o_n, mask=m_n, other=0).to(CDT)
            b_w = tl.load(p_w + (o_n + N + k - j) % N, mask=m_n, other=0).to(CDT)
            acc += b_g * b_w
        tl.store(p_gs + j, to_grad(tl.sum(acc, 0), p_gs))


@triton.jit
def spow(r, gamma):
    """``r^γ`` for r >= 0: 0 where r == 0 (no NaN from log 0), NaN where r is NaN (NaN in,
    NaN out, as torch.pow in the reference)."""
    zero_or_nan = tl.where(r == r, 0.0, r)
    return tl.where(r > 0, tl.exp(gamma * tl.log(tl.where(r > 0, r, 1.0))), zero_or_nan)


@triton.jit
def floor(x, lo):
    """``max(x, lo)`` that keeps NaN: ``tl.maximum``'s default (maxnum) returns ``lo`` for a
    NaN ``x``, which would turn a NaN row sum into a finite normaliser and hide the NaN."""
    return tl.maximum(x, lo, propagate_nan=NAN)


@triton.jit
def sharpen_stats(p_x, gamma, N, BN: tl.constexpr, CDT: tl.constexpr):
    """Scale-free sharpening statistics of w̃ at ``p_x``: ``(max w̃, Σ (w̃/max)^γ)``. A
    positive maximum is used as is (an all-zero row divides by 1, as in the reference); the sum
    is >= 1 for any valid weighting and is clamped below by SHARPEN_TINY."""
    mx = row_max(p_x, N, BN, CDT)
    mx = tl.where(mx > 0, mx, 1.0)
    acc = tl.zeros([BN], dtype=CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        b_x = tl.load(p_x + o_n, mask=o_n < N, other=0).to(CDT)
        acc += spow(b_x / mx, gamma)
    return mx, floor(tl.sum(acc, 0), TINY)


@triton.jit
def sharpen_apply(p_x, p_out, gamma, mx, ssum, N, BN: tl.constexpr, CDT: tl.constexpr):
    """``w = (w̃/max)^γ / Σ`` stored to ``p_out`` (must not alias ``p_x``)."""
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_x = tl.load(p_x + o_n, mask=m_n, other=0).to(CDT)
        b_w = spow(b_x / mx, gamma) / ssum
        tl.store(p_out + o_n, b_w.to(p_out.dtype.element_ty), mask=m_n)


@triton.jit
def sharpen_bwd_row(p_x, p_g, p_dx, gamma, N, BN: tl.constexpr, CDT: tl.constexpr):
    """Backward of sharpening for one row; stores ∂L/∂w̃ to ``p_dx`` (not aliasing ``p_x``) and
    returns ∂L/∂γ. Power form: ∂L/∂w̃_i = γ r_i^(γ-1) / (Σ·max) (ḡ_i - ⟨w, ḡ⟩), r = w̃/max;
    ∂L/∂γ = Σ_i ḡ_i w_i log r_i - ⟨w, ḡ⟩ Σ_j w_j log r_j, terms with w_i = 0 taken as 0."""
    mx, ssum = sharpen_stats(p_x, gamma, N, BN, CDT)
    a_wg = tl.zeros([BN], dtype=CDT)
    a_wl = tl.zeros([BN], dtype=CDT)
    a_gwl = tl.zeros([BN], dtype=CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_r = tl.load(p_x + o_n, mask=m_n, other=0).to(CDT) / mx
        b_g = tl.load(p_g + o_n, mask=m_n, other=0).to(CDT)
        b_w = spow(b_r, gamma) / ssum
        b_wl = tl.where(b_r > 0, b_w * tl.log(tl.where(b_r > 0, b_r, 1.0)), 0.0)
        a_wg += b_w * b_g
        a_wl += b_wl
        a_gwl += b_g * b_wl
    wg = tl.sum(a_wg, 0)
    d_gamma = tl.sum(a_gwl, 0) - wg * tl.sum(a_wl, 0)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_r = tl.load(p_x + o_n, mask=m_n, other=0).to(CDT) / mx
        b_g = tl.load(p_g + o_n, mask=m_n, other=0).to(CDT)
        b_p = tl.where(b_r > 0, spow(b_r, gamma - 1), tl.where(gamma == 1, 1.0, 0.0))
        b_dx = gamma * b_p / ssum / mx * (b_g - wg)
        tl.store(p_dx + o_n, to_grad(b_dx, p_dx), mask=m_n)
    return d_gamma


@triton.jit
def content_bwd_row(
    p_m,
    p_k,
    p_sk,
    p_gw,
    p_a,
    p_c,
    p_dk,
    beta,
    nk,
    m,
    s,
    gscale,
    N,
    W,
    BN: tl.constexpr,
    BW: tl.constexpr,
    CDT: tl.constexpr,
):
    """Backward of content addressing for one head, given K at ``p_sk`` and ∂L/∂w^c at
    ``gscale * p_gw`` (the interpolation gate folds in here). Stores ∂L/∂k to ``p_dk`` and
    the per-slot coefficients of ∂L/∂M_i (``A_i = ∂L/∂K_i / D_i``,
    ``C_i = ∂L/∂K_i u_i ‖k‖ / (‖M_i‖ D_i²)``; this head adds ``A_i k - C_i M_i`` to ∂L/∂M_i)
    to ``p_a``, ``p_c``; returns ∂L/∂β."""
    # ⟨w^c, ḡ⟩
    acc = tl.zeros([BN], dtype=CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_K = tl.load(p_sk + o_n, mask=m_n, other=0).to(CDT)
        b_w = tl.where(m_n, tl.exp(beta * b_K - m) / s, 0.0)
        acc += b_w * (gscale * tl.load(p_gw + o_n, mask=m_n, other=0).to(CDT))
    wg = tl.sum(acc, 0)
    a_db = tl.zeros([BN], dtype=CDT)
    a_c2 = tl.zeros([BN], dtype=CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_K = tl.load(p_sk + o_n, mask=m_n, other=0).to(CDT)
        b_w = tl.where(m_n, tl.exp(beta * b_K - m) / s, 0.0)
        b_gz = b_w * (gscale * tl.load(p_gw + o_n, mask=m_n, other=0).to(CDT) - wg)
        a_db += b_gz * b_K
        b_gK = beta * b_gz
        dot, nm = cosine_tile(p_m, p_k, o_n, N, W, BN, BW, CDT)
        b_D = nk * nm + EPS
        tl.store(p_a + o_n, b_gK / b_D, mask=m_n)
        b_t = b_gK * dot / (b_D * b_D)
        tl.store(p_c + o_n, tl.where(nm > 0, b_t * nk / tl.where(nm > 0, nm, 1.0), 0.0), mask=m_n)
        a_c2 += b_t * nm
    c2 = tl.sum(a_c2, 0)
    inv_nk = tl.where(nk > 0, 1.0 / tl.where(nk > 0, nk, 1.0), 0.0)
    tl.debug_barrier()
    # ∂L/∂k = Σ_i A_i M_i - (k / ‖k‖) Σ_i ∂L/∂K_i u_i ‖M_i‖ / D_i²
    for w0 in range(0, W, BW):
        o_w = w0 + tl.arange(0, BW)
        m_w = o_w < W
        acc_w = tl.zeros([BW], dtype=CDT)
        for n0 in range(0, N, BN):
            o_n = n0 + tl.arange(0, BN)
            m_n = o_n < N
            b_a = tl.load(p_a + o_n, mask=m_n, other=0).to(CDT)
            p = p_m + o_n[:, None] * W + o_w[None, :]
            b_m = tl.load(p, mask=m_n[:, None] & m_w[None, :], other=0).to(CDT)
            acc_w += tl.sum(b_a[:, None] * b_m, 0)
        b_k = tl.load(p_k + o_w, mask=m_w, other=0).to(CDT)
        b_dk = acc_w - b_k * (inv_nk * c2)
        tl.store(p_dk + o_w, to_grad(b_dk, p_dk), mask=m_w)
    return tl.sum(a_db, 0)
