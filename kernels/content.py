"""Content addressing, eqs. (5)-(6): ``w^c = softmax_i(β cos(k, M_i))``, forward and backward.

The backward runs in two launches: one program per (batch, head) computes ∂L/∂k, ∂L/∂β and
per-slot coefficients (A, C) of ∂L/∂M; then one program per (batch, N tile, W tile) sums the
heads' contributions ``Σ_h A_hi k_h - (Σ_h C_hi) M_i`` in a fixed order (deterministic, no
atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty

from . import utils as U


@triton.jit
def content_fwd_kernel(
    p_m, p_k, p_beta, p_sk, p_out, H, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr
):
    i_bh = tl.program_id(0).to(tl.int64)
    i_b = i_bh // H
    p_m += i_b * N * W
    p_k += i_bh * W
    p_sk += i_bh * N
    p_out += i_bh * N
    beta = tl.load(p_beta + i_bh).to(CDT)
    _, m, s = U.content_stats(p_m, p_k, p_sk, beta, N, W, BN, BW, CDT)
    tl.debug_barrier()
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_K = tl.load(p_sk + o_n, mask=m_n, other=0)
        b_w = tl.exp(beta * b_K - m) / s
        tl.store(p_out + o_n, b_w.to(p_out.dtype.element_ty), mask=m_n)


@triton.jit
def content_bwd_kernel(
    p_m,
    p_k,
    p_beta,
    p_g,
    p_sk,
    p_a,
    p_c,
    p_dk,
    p_dbeta,
    H,
    N,
    W,
    BN: tl.constexpr,
    BW: tl.constexpr,
    CDT: tl.constexpr,
):
    i_bh = tl.program_id(0).to(tl.int64)
    i_b = i_bh // H
    p_m += i_b * N * W
    p_k += i_bh * W
    beta = tl.load(p_beta + i_bh).to(CDT)
    p_sk += i_bh * N
    nk, m, s = U.content_stats(p_m, p_k, p_sk, beta, N, W, BN, BW, CDT)
    tl.debug_barrier()
    d_beta = U.content_bwd_row(
        p_m, p_k, p_sk, p_g + i_bh * N, p_a + i_bh * N, p_c + i_bh * N, p_dk + i_bh * W,
        beta, nk, m, s, 1.0, N, W, BN, BW, CDT,
    )  # fmt: skip
    tl.store(p_dbeta + i_bh, U.to_grad(d_beta, p_dbeta))


@triton.jit
def content_mem_bwd_kernel(
    p_m, p_k, p_a, p_c, p_dm, H, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr
):
    """∂L/∂M_i = Σ_h (A_hi k_h - C_hi M_i), heads summed in order."""
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
        b_k = tl.load(p_k + i_bh * W + o_w, mask=m_w, other=0).to(CDT)
        acc += b_a[:, None] * b_k[None, :]
        c += tl.load(p_c + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
    o = i_b * N * W + o_n[:, None] * W + o_w[None, :]
    mask = m_n[:, None] & m_w[None, :]
    b_m = tl.load(p_m + o, mask=mask, other=0).to(CDT)
    tl.store(p_dm + o, U.to_grad((acc - c[:, None] * b_m), p_dm), mask=mask)


def scratch(rows: int, N: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Per-row working storage in the compute dtype (rows of tiled passes, A/C coefficients)."""
    return torch.empty((rows, N), dtype=U.torch_compute_dtype(dtype), device=device)


def content_mem_bwd(memory: torch.Tensor, key: torch.Tensor, a, c) -> torch.Tensor:
    B, N, W = memory.shape
    H = key.shape[1]
    bn = min(triton.next_power_of_2(N), 64)
    bw = min(triton.next_power_of_2(W), max(16, U.TILE_ELEMS // 4 // bn))
    dm = empty((B, N, W), dtype=memory.dtype, device=memory.device)
    grid = (B, triton.cdiv(N, bn), triton.cdiv(W, bw))
    content_mem_bwd_kernel[grid](
        memory, key, a, c, dm, H, N, W, BN=bn, BW=bw, CDT=U.tl_compute_dtype(memory.dtype),
        **U.launch(bn * bw),
    )  # fmt: skip
    return dm


def content_fwd(memory: torch.Tensor, key: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Args: memory `(B, N, W)`, key `(B, H, W)`, beta `(B, H)`, all contiguous.

    Returns `(B, H, N)` content weighting."""
    B, N, W = memory.shape
    H = key.shape[1]
    bn = U.block_n(N)
    bw = U.block_w(W, bn)
    sk = scratch(B * H, N, memory.dtype, memory.device)
    out = empty((B, H, N), dtype=memory.dtype, device=memory.device)
    content_fwd_kernel[(B * H,)](
        memory, key, beta, sk, out, H, N, W, BN=bn, BW=bw,
        CDT=U.tl_compute_dtype(memory.dtype), **U.launch(bn * bw),
    )  # fmt: skip
    return out


def content_bwd(grad, memory, key, beta):
    """Args: grad `(B, H, N)` = ∂L/∂w^c and the forward inputs, all contiguous.

    Returns ``(∂L/∂memory, ∂L/∂key, ∂L/∂beta)``."""
    B, N, W = memory.shape
    H = key.shape[1]
    bn = U.block_n(N)
    bw = U.block_w(W, 2 * bn)  # half the forward's tile, as address_bwd (register pressure)
    sk, a, c = (scratch(B * H, N, memory.dtype, memory.device) for _ in range(3))
    dk = empty((B, H, W), dtype=key.dtype, device=key.device)
    dbeta = empty((B, H), dtype=beta.dtype, device=beta.device)
    content_bwd_kernel[(B * H,)](
        memory, key, beta, grad, sk, a, c, dk, dbeta, H, N, W, BN=bn, BW=bw,
        CDT=U.tl_compute_dtype(memory.dtype), **U.launch(bn * bw),
    )  # fmt: skip
    return content_mem_bwd(memory, key, a, c), dk, dbeta
