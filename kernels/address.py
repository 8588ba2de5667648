"""The fused addressing pipeline, eqs. (5)-(9), forward and backward, one program per
(batch, head).

Forward: when a row fits one tile (N <= ``utils.MAX_BLOCK_N``) everything (cosine, softmax,
interpolation, circular shift via ``tl.gather``, sharpening) stays in registers and only w is
written. Longer rows are walked in tiles; the shift then needs neighbours from other tiles,
so K, w^g and w̃ are staged in per-row float32 scratch rows between the passes.

Backward: recomputes the forward intermediates from the saved inputs (staged in scratch rows),
then runs the stage backwards in reverse; memory gradients of all heads are summed by
``_cosine.cosine_memory_grad_kernel`` (second launch, fixed head order, no atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty

from . import _cosine as C
from . import utils as U


@triton.jit
def address_fwd_kernel(
    p_m, p_k, p_beta, p_gate, p_s, p_gamma, p_wp, p_out, H, N, W, S,
    BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """Single-tile forward (N <= BN): no intermediate leaves registers."""
    i_bh = tl.program_id(0).to(tl.int64)
    i_b = i_bh // H
    p_m += i_b * N * W
    p_k += i_bh * W
    p_s += i_bh * S
    beta = tl.load(p_beta + i_bh).to(CDT)
    g = tl.load(p_gate + i_bh).to(CDT)
    gamma = tl.load(p_gamma + i_bh).to(CDT)
    o_n = tl.arange(0, BN)
    m_n = o_n < N
    nk, kinv = C.key_norm(p_k, W, BW, CDT)
    dot, nm, rinv = C.cosine_tile(p_m, p_k, kinv, o_n, N, W, BN, BW, CDT)
    b_z = tl.where(m_n, beta * (dot / U.cos_denom(nk, nm, kinv, rinv, CDT)), float("-inf"))
    b_e = tl.exp(b_z - tl.max(b_z, 0))
    b_wc = b_e / tl.sum(b_e, 0)
    b_wp = tl.load(p_wp + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
    b_wg = g * b_wc + (1 - g) * b_wp
    k = (S - 1) // 2
    b_wt = tl.zeros([BN], dtype=CDT)
    for j in range(S):
        b_sj = tl.load(p_s + j).to(CDT)
        b_wt += b_sj * tl.gather(b_wg, (o_n + N + k - j) % N, 0)
    mx = tl.max(tl.where(m_n, b_wt, float("-inf")), 0)
    mx = tl.where(mx > 0, mx, 1.0)
    b_p = tl.where(m_n, U.spow(b_wt / mx, gamma), 0.0)
    b_w = b_p / U.floor(tl.sum(b_p, 0), U.TINY)  # keeps a NaN sum (docs/math.md#nan-in-nan-out)
    tl.store(p_out + i_bh * N + o_n, b_w.to(p_out.dtype.element_ty), mask=m_n)


@triton.jit
def _interp_row(p_sk, p_wp, p_dst, beta, g, m, s, N, BN: tl.constexpr, CDT: tl.constexpr):
    """w^g = g softmax(βK) + (1 - g) w_prev from staged K, stored to ``p_dst``."""
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_wc = tl.exp(beta * tl.load(p_sk + o_n, mask=m_n, other=0) - m) / s
        b_wp = tl.load(p_wp + o_n, mask=m_n, other=0).to(CDT)
        tl.store(p_dst + o_n, g * b_wc + (1 - g) * b_wp, mask=m_n)


@triton.jit
def _shift_row(p_src, p_s, p_dst, N, S, BN: tl.constexpr, CDT: tl.constexpr):
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        tl.store(p_dst + o_n, U.shift_tile(p_src, p_s, o_n, N, S, BN, CDT), mask=o_n < N)


@triton.jit
def address_fwd_tiled_kernel(
    p_m, p_k, p_beta, p_gate, p_s, p_gamma, p_wp, p_sa, p_sb, p_sc, p_out, H, N, W, S,
    BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """Multi-tile forward: K -> ``p_sa``, w^g -> ``p_sb``, w̃ -> ``p_sc`` (scratch rows)."""
    i_bh = tl.program_id(0).to(tl.int64)
    i_b = i_bh // H
    p_sa += i_bh * N
    p_sb += i_bh * N
    p_sc += i_bh * N
    beta = tl.load(p_beta + i_bh).to(CDT)
    g = tl.load(p_gate + i_bh).to(CDT)
    gamma = tl.load(p_gamma + i_bh).to(CDT)
    _, _, m, s = C.content_stats(p_m + i_b * N * W, p_k + i_bh * W, p_sa, beta, N, W, BN, BW, CDT)
    tl.debug_barrier()
    _interp_row(p_sa, p_wp + i_bh * N, p_sb, beta, g, m, s, N, BN, CDT)
    tl.debug_barrier()
    _shift_row(p_sb, p_s + i_bh * S, p_sc, N, S, BN, CDT)
    tl.debug_barrier()
    mx, ssum = U.sharpen_stats(p_sc, gamma, N, BN, CDT)
    U.sharpen_apply(p_sc, p_out + i_bh * N, gamma, mx, ssum, N, BN, CDT)


@triton.jit
def address_bwd_kernel(
    p_m, p_k, p_beta, p_gate, p_s, p_gamma, p_wp, p_g,
    p_sa, p_sb, p_sc, p_sd, p_a, p_c, p_ri, p_ki,
    p_dk, p_dbeta, p_dgate, p_ds, p_dgamma, p_dwp, H, N, W, S,
    BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """Everything but ∂L/∂M (left as coefficients A, C for ``cosine_memory_grad_kernel``)."""
    i_bh = tl.program_id(0).to(tl.int64)
    i_b = i_bh // H
    p_m += i_b * N * W
    p_k += i_bh * W
    p_s += i_bh * S
    p_wp += i_bh * N
    p_sa += i_bh * N
    p_sb += i_bh * N
    p_sc += i_bh * N
    p_sd += i_bh * N
    beta = tl.load(p_beta + i_bh).to(CDT)
    g = tl.load(p_gate + i_bh).to(CDT)
    gamma = tl.load(p_gamma + i_bh).to(CDT)
    # recompute: K -> sa, w^g -> sb, w̃ -> sc
    nk, kinv, m, s = C.content_stats(p_m, p_k, p_sa, beta, N, W, BN, BW, CDT)
    tl.store(p_ki + i_bh, kinv)
    tl.debug_barrier()
    _interp_row(p_sa, p_wp, p_sb, beta, g, m, s, N, BN, CDT)
    tl.debug_barrier()
    _shift_row(p_sb, p_s, p_sc, N, S, BN, CDT)
    tl.debug_barrier()
    # sharpen: ∂L/∂w̃ -> sd
    d_gamma = U.sharpen_bwd_row(p_sc, p_g + i_bh * N, p_sd, gamma, N, BN, CDT)
    tl.store(p_dgamma + i_bh, U.to_grad(d_gamma, p_dgamma))
    tl.debug_barrier()
    # shift: ∂L/∂s, then ∂L/∂w^g -> sc (w̃ is dead)
    U.shift_grad_s(p_sb, p_sd, p_ds + i_bh * S, N, S, BN, CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        tl.store(p_sc + o_n, U.shift_bwd_tile(p_sd, p_s, o_n, N, S, BN, CDT), mask=o_n < N)
    tl.debug_barrier()
    # interpolation: ∂L/∂w_prev, ∂L/∂g; ∂L/∂w^c = g ∂L/∂w^g is folded into the content backward
    acc = tl.zeros([BN], dtype=CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_gg = tl.load(p_sc + o_n, mask=m_n, other=0)
        b_wc = tl.where(m_n, tl.exp(beta * tl.load(p_sa + o_n, mask=m_n, other=0) - m) / s, 0.0)
        b_wp = tl.load(p_wp + o_n, mask=m_n, other=0).to(CDT)
        acc += (b_wc - b_wp) * b_gg
        tl.store(p_dwp + i_bh * N + o_n, U.to_grad(((1 - g) * b_gg), p_dwp), mask=m_n)
    tl.store(p_dgate + i_bh, U.to_grad(tl.sum(acc, 0), p_dgate))
    d_beta = C.content_bwd_row(
        p_m, p_k, p_sa, p_sc, p_a + i_bh * N, p_c + i_bh * N, p_ri + i_bh * N, p_dk + i_bh * W,
        beta, nk, kinv, m, s, g, N, W, BN, BW, CDT,
    )  # fmt: skip
    tl.store(p_dbeta + i_bh, U.to_grad(d_beta, p_dbeta))


def address_fwd(memory, key, beta, gate, shift, gamma, w_prev) -> torch.Tensor:
    """Args: memory `(B, N, W)`, key `(B, H, W)`, beta/gate/gamma `(B, H)`, shift `(B, H, S)`,
    w_prev `(B, H, N)`, all contiguous. Returns `(B, H, N)`."""
    B, N, W = memory.shape
    H, S = key.shape[1], shift.shape[-1]
    bn = U.block_n(N)
    bw = U.block_w_fwd(W, bn)
    cdt = U.tl_compute_dtype(memory.dtype)
    out = empty((B, H, N), dtype=memory.dtype, device=memory.device)
    args = (memory, key, beta, gate, shift, gamma, w_prev)
    if N <= bn:
        address_fwd_kernel[(B * H,)](
            *args, out, H, N, W, S, BN=bn, BW=bw, CDT=cdt, **U.launch(bn * bw)
        )
    else:
        sa, sb, sc = (C.scratch(B * H, N, memory.dtype, memory.device) for _ in range(3))
        address_fwd_tiled_kernel[(B * H,)](
            *args, sa, sb, sc, out, H, N, W, S, BN=bn, BW=bw, CDT=cdt,
            **U.launch(bn * bw),
        )  # fmt: skip
    return out


def address_bwd(grad, memory, key, beta, gate, shift, gamma, w_prev):
    """Args: grad `(B, H, N)` and the forward inputs, all contiguous.

    Returns the gradients of (memory, key, beta, gate, shift, gamma, w_prev)."""
    B, N, W = memory.shape
    H, S = key.shape[1], shift.shape[-1]
    bn, bw, opts = U.bwd_tile(N, W)  # a smaller tile than the forward's: more is live beside it
    dev, dt = memory.device, memory.dtype
    sa, sb, sc, sd, a, c, ri = (C.scratch(B * H, N, dt, dev) for _ in range(7))
    ki = C.scratch(B * H, 1, dt, dev)
    dk = empty((B, H, W), dtype=dt, device=dev)
    dbeta, dgate, dgamma = (empty((B, H), dtype=dt, device=dev) for _ in range(3))
    ds = empty((B, H, S), dtype=dt, device=dev)
    dwp = empty((B, H, N), dtype=dt, device=dev)
    address_bwd_kernel[(B * H,)](
        memory, key, beta, gate, shift, gamma, w_prev, grad, sa, sb, sc, sd, a, c, ri, ki,
        dk, dbeta, dgate, ds, dgamma, dwp, H, N, W, S, BN=bn, BW=bw,
        CDT=U.tl_compute_dtype(dt), **opts,
    )  # fmt: skip
    dm = C.cosine_memory_grad(memory, key, a, c, ri, ki)
    return dm, dk, dbeta, dgate, ds, dgamma, dwp
