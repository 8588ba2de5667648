"""Read, eq. (2): ``r_h = Σ_i w_hi M_i`` for every head."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty

from . import utils as U


@triton.jit
def read_fwd_kernel(
    p_m, p_w, p_out, H, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr
):
    """One program per (batch, head, W tile), walking N in tiles."""
    i_bh = tl.program_id(0).to(tl.int64)
    i_b = i_bh // H
    o_w = tl.program_id(1) * BW + tl.arange(0, BW)
    m_w = o_w < W
    acc = tl.zeros([BW], dtype=CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_w = tl.load(p_w + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
        p = p_m + i_b * N * W + o_n[:, None] * W + o_w[None, :]
        b_m = tl.load(p, mask=m_n[:, None] & m_w[None, :], other=0).to(CDT)
        acc += tl.sum(b_w[:, None] * b_m, 0)
    tl.store(p_out + i_bh * W + o_w, acc.to(p_out.dtype.element_ty), mask=m_w)


@triton.jit
def read_bwd_kernel(
    p_m, p_w, p_g, p_dm, p_dw, H, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr
):
    """One program per (batch, N tile): ∂L/∂w_hi = M_i · r̄_h and ∂L/∂M_i = Σ_h w_hi r̄_h
    (heads summed in order, no atomics)."""
    i_b = tl.program_id(0).to(tl.int64)
    o_n = tl.program_id(1) * BN + tl.arange(0, BN)
    m_n = o_n < N
    p_m += i_b * N * W
    for h in range(H):
        i_bh = i_b * H + h
        acc = tl.zeros([BN], dtype=CDT)
        for w0 in range(0, W, BW):
            o_w = w0 + tl.arange(0, BW)
            m_w = o_w < W
            b_g = tl.load(p_g + i_bh * W + o_w, mask=m_w, other=0).to(CDT)
            p = p_m + o_n[:, None] * W + o_w[None, :]
            b_m = tl.load(p, mask=m_n[:, None] & m_w[None, :], other=0).to(CDT)
            acc += tl.sum(b_m * b_g[None, :], 1)
        tl.store(p_dw + i_bh * N + o_n, U.to_grad(acc, p_dw), mask=m_n)
    for w0 in range(0, W, BW):
        o_w = w0 + tl.arange(0, BW)
        m_w = o_w < W
        acc2 = tl.zeros([BN, BW], dtype=CDT)
        for h in range(H):
            i_bh = i_b * H + h
            b_w = tl.load(p_w + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
            b_g = tl.load(p_g + i_bh * W + o_w, mask=m_w, other=0).to(CDT)
            acc2 += b_w[:, None] * b_g[None, :]
        o = o_n[:, None] * W + o_w[None, :]
        tl.store(p_dm + i_b * N * W + o, U.to_grad(acc2, p_dm), mask=m_n[:, None] & m_w[None, :])


def _blocks(N: int, W: int) -> tuple[int, int]:
    bw = min(triton.next_power_of_2(W), 128)
    bn = max(1, min(triton.next_power_of_2(N), U.MAX_BLOCK_N, U.TILE_ELEMS // bw))
    return bn, bw


def read_fwd(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Args: memory `(B, N, W)`, w `(B, H, N)`, contiguous. Returns `(B, H, W)`."""
    B, N, W = memory.shape
    H = w.shape[1]
    bn, bw = _blocks(N, W)
    out = empty((B, H, W), dtype=memory.dtype, device=memory.device)
    read_fwd_kernel[(B * H, triton.cdiv(W, bw))](
        memory, w, out, H, N, W, BN=bn, BW=bw, CDT=U.tl_compute_dtype(memory.dtype),
        **U.launch(bn * bw),
    )  # fmt: skip
    return out


def read_bwd(grad: torch.Tensor, memory: torch.Tensor, w: torch.Tensor):
    """Args: grad `(B, H, W)` and the forward inputs. Returns ``(∂L/∂memory, ∂L/∂w)``."""
    B, N, W = memory.shape
    H = w.shape[1]
    bn, bw = _blocks(N, W)
    bn = min(bn, 64)
    dm = empty((B, N, W), dtype=memory.dtype, device=memory.device)
    dw = empty((B, H, N), dtype=w.dtype, device=w.device)
    read_bwd_kernel[(B, triton.cdiv(N, bn))](
        memory, w, grad, dm, dw, H, N, W, BN=bn, BW=bw, CDT=U.tl_compute_dtype(memory.dtype),
        **U.launch(bn * bw),
    )  # fmt: skip
    return dm, dw
