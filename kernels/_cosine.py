"""Scale-safe cosine pieces shared by ``content_address.py`` and ``address.py`` (so ops do
not import each other): key norm, cosine tile, online-softmax stats, the content backward of
one row, and ∂L/∂M summed over heads in a fixed order (one program per (batch, N tile, W tile),
no atomics). Vectors whose plain squared norm is out of range are rescaled by an exact power
of two first (k~, M~; docs/math.md#scale-safe-norms).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty

from . import utils as U


@triton.jit
def key_norm(p_k, W, BW: tl.constexpr, CDT: tl.constexpr):
    """Scale-safe ‖k~‖ of one key of length W and its inverse scale s_k^-1 (1 unless the plain
    squared norm is out of range; docs/math.md#scale-safe-norms)."""
    acc = tl.zeros([BW], dtype=CDT)
    amax = tl.zeros([BW], dtype=CDT)
    for w0 in range(0, W, BW):
        o_w = w0 + tl.arange(0, BW)
        b_k = tl.load(p_k + o_w, mask=o_w < W, other=0).to(CDT)
        acc += b_k * b_k
        amax = tl.maximum(amax, tl.abs(b_k))
    sq = tl.sum(acc, 0)
    kinv = tl.where(U.plain_sq(sq), 1.0, U.inverse_pow2_scale(tl.max(amax, 0), CDT))
    if kinv != 1.0:
        acc = tl.zeros([BW], dtype=CDT)
        for w0 in range(0, W, BW):
            o_w = w0 + tl.arange(0, BW)
            b_k = tl.load(p_k + o_w, mask=o_w < W, other=0).to(CDT) * kinv
            acc += b_k * b_k
        sq = tl.sum(acc, 0)
    return tl.sqrt(sq), kinv


@triton.jit
def cosine_tile(p_m, p_k, kinv, o_n, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr):
    """``(k~·M~_i, ‖M~_i‖, s_i^-1)`` for the rows ``o_n`` of one memory ``p_m`` (N, W), given
    the key's inverse scale: plain sums, redone on rescaled rows only if some row (or the
    key) is out of the fast-path range (docs/math.md#scale-safe-norms)."""
    m_n = o_n < N
    dot = tl.zeros([BN], dtype=CDT)
    sq = tl.zeros([BN], dtype=CDT)
    amax = tl.zeros([BN], dtype=CDT)
    for w0 in range(0, W, BW):
        o_w = w0 + tl.arange(0, BW)
        m_w = o_w < W
        b_k = tl.load(p_k + o_w, mask=m_w, other=0).to(CDT)
        p = p_m + o_n[:, None] * W + o_w[None, :]
        b_m = tl.load(p, mask=m_n[:, None] & m_w[None, :], other=0).to(CDT)
        dot += tl.sum(b_m * b_k[None, :], 1)
        sq += tl.sum(b_m * b_m, 1)
        amax = tl.maximum(amax, tl.max(tl.abs(b_m), 1))
    rinv = tl.where(U.plain_sq(sq), 1.0, U.inverse_pow2_scale(amax, CDT))
    if (kinv != 1.0) | (tl.min(rinv, 0) != 1.0) | (tl.max(rinv, 0) != 1.0):
        dot = tl.zeros([BN], dtype=CDT)
        sq = tl.zeros([BN], dtype=CDT)
        for w0 in range(0, W, BW):
            o_w = w0 + tl.arange(0, BW)
            m_w = o_w < W
            b_k = tl.load(p_k + o_w, mask=m_w, other=0).to(CDT) * kinv
            p = p_m + o_n[:, None] * W + o_w[None, :]
            b_m = tl.load(p, mask=m_n[:, None] & m_w[None, :], other=0).to(CDT) * rinv[:, None]
            dot += tl.sum(b_m * b_k[None, :], 1)
            sq += tl.sum(b_m * b_m, 1)
    return dot, tl.sqrt(sq), rinv


@triton.jit
def content_stats(
    p_m, p_k, p_sk, beta, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr
):
    """Cosine similarities K of one key against all rows, stored to ``p_sk`` (N,), and the
    softmax statistics of ``β K``: returns ``(‖k~‖, s_k^-1, max_i βK_i, Σ_i exp(βK_i - max))``."""
    nk, kinv = key_norm(p_k, W, BW, CDT)
    m = tl.full([], float("-inf"), CDT)
    s = tl.zeros([], dtype=CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        dot, nm, rinv = cosine_tile(p_m, p_k, kinv, o_n, N, W, BN, BW, CDT)
        b_K = dot / U.cos_denom(nk, nm, kinv, rinv, CDT)
        tl.store(p_sk + o_n, b_K, mask=m_n)
        b_z = tl.where(m_n, beta * b_K, float("-inf"))
        m_new = tl.maximum(m, tl.max(b_z, 0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(b_z - m_new), 0)
        m = m_new
    return nk, kinv, m, s


@triton.jit
def content_bwd_row(
    p_m, p_k, p_sk, p_gw, p_a, p_c, p_ri, p_dk, beta, nk, kinv, m, s, gscale, N, W,
    BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """Backward of content addressing for one head, given K at ``p_sk`` and ∂L/∂w^c at
    ``gscale * p_gw`` (the interpolation gate folds in here), scale-safe
    (docs/math-backward.md#cosine-backward). Stores ∂L/∂k to ``p_dk``, the rows' inverse
    scales s_i^-1 to ``p_ri`` and the per-slot coefficients of ∂L/∂M_i (``A_i = G_i Q_i``,
    ``C_i = G_i Q_i K_i ‖k~‖ / ‖M~_i‖``; this head adds ``A_i k~ - C_i M~_i``) to ``p_a``,
    ``p_c``; overwrites K with ``G_i P_i``; returns ∂L/∂β."""
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
    inv_nk = tl.where(nk > 0, 1.0 / tl.where(nk > 0, nk, 1.0), 0.0)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_K = tl.load(p_sk + o_n, mask=m_n, other=0).to(CDT)
        b_w = tl.where(m_n, tl.exp(beta * b_K - m) / s, 0.0)
        b_gz = b_w * (gscale * tl.load(p_gw + o_n, mask=m_n, other=0).to(CDT) - wg)
        a_db += b_gz * b_K
        b_gK = beta * b_gz
        _, nm, rinv = cosine_tile(p_m, p_k, kinv, o_n, N, W, BN, BW, CDT)
        b_P = b_gK * U.grad_scale(nk, nm, kinv, rinv, CDT)
        b_Q = b_gK * U.grad_scale(nk, nm, rinv, kinv, CDT)
        inv_nm = tl.where(nm > 0, 1.0 / tl.where(nm > 0, nm, 1.0), 0.0)
        tl.store(p_a + o_n, b_Q, mask=m_n)
        tl.store(p_c + o_n, b_K * nk * inv_nm * b_Q, mask=m_n)
        tl.store(p_ri + o_n, rinv, mask=m_n)
        tl.store(p_sk + o_n, b_P, mask=m_n)
        a_c2 += b_K * nm * inv_nk * b_P
    c2 = tl.sum(a_c2, 0)
    tl.debug_barrier()
    # ∂L/∂k = Σ_i G_i P_i M~_i - k~ Σ_i G_i P_i K_i ‖M~_i‖ / ‖k~‖
    for w0 in range(0, W, BW):
        o_w = w0 + tl.arange(0, BW)
        m_w = o_w < W
        acc_w = tl.zeros([BW], dtype=CDT)
        for n0 in range(0, N, BN):
            o_n = n0 + tl.arange(0, BN)
            m_n = o_n < N
            b_a = tl.load(p_sk + o_n, mask=m_n, other=0).to(CDT)
            b_r = tl.load(p_ri + o_n, mask=m_n, other=0).to(CDT)
            p = p_m + o_n[:, None] * W + o_w[None, :]
            b_m = tl.load(p, mask=m_n[:, None] & m_w[None, :], other=0).to(CDT)
            acc_w += tl.sum(b_a[:, None] * (b_m * b_r[:, None]), 0)
        b_k = tl.load(p_k + o_w, mask=m_w, other=0).to(CDT) * kinv
        b_dk = acc_w - b_k * c2
        tl.store(p_dk + o_w, U.to_grad(b_dk, p_dk), mask=m_w)
    return tl.sum(a_db, 0)


@triton.jit
def cosine_memory_grad_kernel(
    p_m, p_k, p_a, p_c, p_ri, p_ki, p_dm, H, N, W,
    BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """∂L/∂M_i = Σ_h (A_hi k~_h - C_hi M~_i), heads summed in order; k~ = k s_k^-1 and
    M~_i = M_i s_i^-1 (exact power-of-two rescalings, docs/math.md#scale-safe-norms)."""
    i_b = tl.program_id(0).to(tl.int64)
    o_n = tl.program_id(1) * BN + tl.arange(0, BN)
    o_w = tl.program_id(2) * BW + tl.arange(0, BW)
    m_n = o_n < N
    m_w = o_w < W
    acc = tl.zeros([BN, BW], dtype=CDT)
    c = tl.zeros([BN], dtype=CDT)
    for h in range(H):
        i_bh = i_b * H + h
        b_a = tl.load(p_a + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
        kinv = tl.load(p_ki + i_bh).to(CDT)
        b_k = tl.load(p_k + i_bh * W + o_w, mask=m_w, other=0).to(CDT) * kinv
        acc += b_a[:, None] * b_k[None, :]
        c += tl.load(p_c + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
    o = i_b * N * W + o_n[:, None] * W + o_w[None, :]
    mask = m_n[:, None] & m_w[None, :]
    b_r = tl.load(p_ri + i_b * H * N + o_n, mask=m_n, other=1).to(CDT)  # head 0's copy
    b_m = tl.load(p_m + o, mask=mask, other=0).to(CDT) * b_r[:, None]
    tl.store(p_dm + o, U.to_grad((acc - c[:, None] * b_m), p_dm), mask=mask)


def scratch(rows: int, N: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Per-row working storage in the compute dtype (rows of tiled passes, A/C coefficients)."""
    return torch.empty((rows, N), dtype=U.torch_compute_dtype(dtype), device=device)


def cosine_memory_grad(memory: torch.Tensor, key: torch.Tensor, a, c, ri, ki) -> torch.Tensor:
    """∂L/∂M `(B, N, W)` from the per-row coefficients a, c, the rows' s_i^-1 (ri) and the
    keys' s_k^-1 (ki) of the content backward rows."""
    B, N, W = memory.shape
    H = key.shape[1]
    bn = min(triton.next_power_of_2(N), 64)
    bw = min(triton.next_power_of_2(W), max(16, U.TILE_ELEMS // 4 // bn))
    dm = empty((B, N, W), dtype=memory.dtype, device=memory.device)
    grid = (B, triton.cdiv(N, bn), triton.cdiv(W, bw))
    cosine_memory_grad_kernel[grid](
        memory, key, a, c, ri, ki, dm, H, N, W, BN=bn, BW=bw, CDT=U.tl_compute_dtype(memory.dtype),
        **U.launch(bn * bw),
    )  # fmt: skip
    return dm
