"""Circular shift convolution, eq. (8): ``w̃_i = Σ_{d=-k..k} s_d w_{(i-d) mod N}``.

Neighbours across tile boundaries (and around the ring) are read straight from the input
row, so a tile never needs another tile's registers.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty

from . import utils as U


@triton.jit
def shift_convolve_fwd_kernel(p_w, p_s, p_out, N, S, BN: tl.constexpr, CDT: tl.constexpr):
    i_bh = tl.program_id(0).to(tl.int64)
    o_n = tl.program_id(1) * BN + tl.arange(0, BN)
    b_x = U.shift_tile(p_w + i_bh * N, p_s + i_bh * S, o_n, N, S, BN, CDT)
    tl.store(p_out + i_bh * N + o_n, b_x.to(p_out.dtype.element_ty), mask=o_n < N)


@triton.jit
def shift_convolve_bwd_kernel(p_w, p_s, p_g, p_dw, p_ds, N, S, BN: tl.constexpr, CDT: tl.constexpr):
    i_bh = tl.program_id(0).to(tl.int64)
    p_w += i_bh * N
    p_g += i_bh * N
    p_s += i_bh * S
    U.shift_grad_s(p_w, p_g, p_ds + i_bh * S, N, S, BN, CDT)
    for n0 in range(0, N, BN):
        o_n = n0 + tl.arange(0, BN)
        b_dw = U.shift_bwd_tile(p_g, p_s, o_n, N, S, BN, CDT)
        tl.store(p_dw + i_bh * N + o_n, U.to_grad(b_dw, p_dw), mask=o_n < N)


def shift_convolve_fwd(w: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Args: w `(B, H, N)`, shift `(B, H, S)`, contiguous. Returns `(B, H, N)`."""
    B, H, N = w.shape
    S = shift.shape[-1]
    bn = U.block_n(N)
    out = empty((B, H, N), dtype=w.dtype, device=w.device)
    shift_convolve_fwd_kernel[(B * H, triton.cdiv(N, bn))](
        w, shift, out, N, S, BN=bn, CDT=U.tl_compute_dtype(w.dtype), **U.launch(bn)
    )
    return out


def shift_convolve_bwd(grad: torch.Tensor, w: torch.Tensor, shift: torch.Tensor):
    """Args: grad `(B, H, N)` and the forward inputs, contiguous. Returns ``(∂L/∂w, ∂L/∂s)``."""
    B, H, N = w.shape
    S = shift.shape[-1]
    bn = U.block_n(N)
    dw = empty((B, H, N), dtype=w.dtype, device=w.device)
    ds = empty((B, H, S), dtype=shift.dtype, device=w.device)
    shift_convolve_bwd_kernel[(B * H,)](
        w, shift, grad, dw, ds, N, S, BN=bn, CDT=U.tl_compute_dtype(w.dtype),
        **U.launch(bn),
    )  # fmt: skip
    return dw, ds
