"""Content addressing, eqs. (5)-(6): ``w^c = softmax_i(β cos(k, M_i))``, forward and backward.

The backward runs in two launches: one program per (batch, head) computes ∂L/∂k, ∂L/∂β and
per-slot coefficients (A, C) of ∂L/∂M; then ``_cosine.cosine_memory_grad_kernel`` sums the
heads' contributions ``Σ_h A_hi k~_h - (Σ_h C_hi) M~_i`` in a fixed order (deterministic, no
atomics). Norms and dots are scale-safe: vectors whose plain squared norm is out of range are
rescaled by an exact power of two first (k~, M~; docs/math.md#scale-safe-norms).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty

from . import _cosine as C
from . import utils as U


@triton.jit
def content_address_fwd_kernel(
    p_m, p_k, p_beta, p_sk, p_out, H, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr
):
    i_bh = tl.program_id(0).to(tl.int64)
    i_b = i_bh // H
    p_m += i_b * N * W
    p_k += i_bh * W
    p_sk += i_bh * N
    p_out += i_bh * N
    beta = tl.load(p_beta + i_bh).to(CDT)
    _, _, m, s = C.content_stats(p_m, p_k, p_sk, beta, N, W, BN, BW, CDT)
    tl.debug_barrier()
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < N
        b_K = tl.load(p_sk + o_n, mask=m_n, other=0)
        b_w = tl.exp(beta * b_K - m) / s
        tl.store(p_out + o_n, b_w.to(p_out.dtype.element_ty), mask=m_n)


@triton.jit
def content_address_bwd_kernel(
    p_m,
    p_k,
    p_beta,
    p_g,
    p_sk,
    p_a,
    p_c,
    p_ri,
    p_ki,
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
    nk, kinv, m, s = C.content_stats(p_m, p_k, p_sk, beta, N, W, BN, BW, CDT)
    tl.store(p_ki + i_bh, kinv)
    tl.debug_barrier()
    d_beta = C.content_bwd_row(
        p_m, p_k, p_sk, p_g + i_bh * N, p_a + i_bh * N, p_c + i_bh * N, p_ri + i_bh * N,
        p_dk + i_bh * W, beta, nk, kinv, m, s, 1.0, N, W, BN, BW, CDT,
    )  # fmt: skip
    tl.store(p_dbeta + i_bh, U.to_grad(d_beta, p_dbeta))


def content_address_fwd(
    memory: torch.Tensor, key: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """Args: memory `(B, N, W)`, key `(B, H, W)`, beta `(B, H)`, all contiguous.

    Returns `(B, H, N)` content weighting."""
    B, N, W = memory.shape
    H = key.shape[1]
    bn = U.block_n(N)
    bw = U.block_w_fwd(W, bn)
    sk = C.scratch(B * H, N, memory.dtype, memory.device)
    out = empty((B, H, N), dtype=memory.dtype, device=memory.device)
    content_address_fwd_kernel[(B * H,)](
        memory, key, beta, sk, out, H, N, W, BN=bn, BW=bw,
        CDT=U.tl_compute_dtype(memory.dtype), **U.launch(bn * bw),
    )  # fmt: skip
    return out


def content_address_bwd(grad, memory, key, beta):
    """Args: grad `(B, H, N)` = ∂L/∂w^c and the forward inputs, all contiguous.

    Returns ``(∂L/∂memory, ∂L/∂key, ∂L/∂beta)``."""
    B, N, W = memory.shape
    H = key.shape[1]
    bn, bw, opts = U.bwd_tile(N, W)  # a smaller tile than the forward's, as address_bwd
    sk, a, c, ri = (C.scratch(B * H, N, memory.dtype, memory.device) for _ in range(4))
    ki = C.scratch(B * H, 1, memory.dtype, memory.device)
    dk = empty((B, H, W), dtype=key.dtype, device=key.device)
    dbeta = empty((B, H), dtype=beta.dtype, device=beta.device)
    content_address_bwd_kernel[(B * H,)](
        memory, key, beta, grad, sk, a, c, ri, ki, dk, dbeta, H, N, W, BN=bn, BW=bw,
        CDT=U.tl_compute_dtype(memory.dtype), **opts,
    )  # fmt: skip
    return C.cosine_memory_grad(memory, key, a, c, ri, ki), dk, dbeta
