"""Interpolation, eq. (7): ``w^g = g w^c + (1 - g) w_prev``."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty

from . import utils as U


@triton.jit
def interpolate_fwd_kernel(p_wc, p_wp, p_gate, p_out, N, BN: tl.constexpr, CDT: tl.constexpr):
    i_bh = tl.program_id(0).to(tl.int64)
    o_n = tl.program_id(1) * BN + tl.arange(0, BN)
    m_n = o_n < N
    g = tl.load(p_gate + i_bh).to(CDT)
    b_wc = tl.load(p_wc + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
    b_wp = tl.load(p_wp + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
    b_w = g * b_wc + (1 - g) * b_wp
    tl.store(p_out + i_bh * N + o_n, b_w.to(p_out.dtype.element_ty), mask=m_n)


@triton.jit
def interpolate_bwd_kernel(
    p_wc, p_wp, p_gate, p_g, p_dwc, p_dwp, p_dgate, N, BN: tl.constexpr, CDT: tl.constexpr
):
    i_bh = tl.program_id(0).to(tl.int64)
    g = tl.load(p_gate + i_bh).to(CDT)
    acc = tl.zeros([BN], dtype=CDT)
    for n0 in range(0, N, BN):
        o = i_bh * N + n0 + tl.arange(0, BN)
        m_n = n0 + tl.arange(0, BN) < N
        b_g = tl.load(p_g + o, mask=m_n, other=0).to(CDT)
        b_wc = tl.load(p_wc + o, mask=m_n, other=0).to(CDT)
        b_wp = tl.load(p_wp + o, mask=m_n, other=0).to(CDT)
        acc += (b_wc - b_wp) * b_g
        tl.store(p_dwc + o, U.to_grad((g * b_g), p_dwc), mask=m_n)
        tl.store(p_dwp + o, U.to_grad(((1 - g) * b_g), p_dwp), mask=m_n)
    tl.store(p_dgate + i_bh, U.to_grad(tl.sum(acc, 0), p_dgate))


def interpolate_fwd(w_content: torch.Tensor, w_prev: torch.Tensor, gate: torch.Tensor):
    """Args: w_content, w_prev `(B, H, N)`, gate `(B, H)`, contiguous. Returns `(B, H, N)`."""
    B, H, N = w_content.shape
    bn = U.block_n(N)
    out = empty((B, H, N), dtype=w_content.dtype, device=w_content.device)
    interpolate_fwd_kernel[(B * H, triton.cdiv(N, bn))](
        w_content, w_prev, gate, out, N, BN=bn, CDT=U.tl_compute_dtype(out.dtype),
        **U.launch(bn),
    )  # fmt: skip
    return out


def interpolate_bwd(grad, w_content, w_prev, gate):
    """Returns ``(∂L/∂w_content, ∂L/∂w_prev, ∂L/∂gate)``."""
    B, H, N = w_content.shape
    bn = U.block_n(N)
    dwc = empty((B, H, N), dtype=w_content.dtype, device=w_content.device)
    dwp = empty((B, H, N), dtype=w_content.dtype, device=w_content.device)
    dgate = empty((B, H), dtype=gate.dtype, device=gate.device)
    interpolate_bwd_kernel[(B * H,)](
        w_content, w_prev, gate, grad, dwc, dwp, dgate, N, BN=bn,
        CDT=U.tl_compute_dtype(w_content.dtype), **U.launch(bn),
    )  # fmt: skip
    return dwc, dwp, dgate
