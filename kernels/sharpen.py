"""Sharpening, eq. (9), in the reference's scale-free form: ``r = w̃ / max w̃``,
``w = r^γ / Σ_j r_j^γ`` (the normaliser is >= 1, so it cannot underflow for γ up to 50)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty

from . import utils as U


@triton.jit
def sharpen_fwd_kernel(p_w, p_gamma, p_out, N, BN: tl.constexpr, CDT: tl.constexpr):
    i_bh = tl.program_id(0).to(tl.int64)
    gamma = tl.load(p_gamma + i_bh).to(CDT)
    mx, ssum = U.sharpen_stats(p_w + i_bh * N, gamma, N, BN, CDT)
    U.sharpen_apply(p_w + i_bh * N, p_out + i_bh * N, gamma, mx, ssum, N, BN, CDT)


@triton.jit
def sharpen_bwd_kernel(p_w, p_gamma, p_g, p_dw, p_dgamma, N, BN: tl.constexpr, CDT: tl.constexpr):
    i_bh = tl.program_id(0).to(tl.int64)
    gamma = tl.load(p_gamma + i_bh).to(CDT)
    d_gamma = U.sharpen_bwd_row(p_w + i_bh * N, p_g + i_bh * N, p_dw + i_bh * N, gamma, N, BN, CDT)
    tl.store(p_dgamma + i_bh, U.to_grad(d_gamma, p_dgamma))


def sharpen_fwd(w: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Args: w `(B, H, N)` non-negative, gamma `(B, H)`, contiguous. Returns `(B, H, N)`."""
    B, H, N = w.shape
    bn = U.block_n(N)
    out = empty((B, H, N), dtype=w.dtype, device=w.device)
    sharpen_fwd_kernel[(B * H,)](
        w, gamma, out, N, BN=bn, CDT=U.tl_compute_dtype(w.dtype), **U.launch(bn)
    )
    return out


def sharpen_bwd(grad: torch.Tensor, w: torch.Tensor, gamma: torch.Tensor):
    """Args: grad `(B, H, N)` and the forward inputs, contiguous. Returns ``(∂L/∂w, ∂L/∂γ)``."""
    B, H, N = w.shape
    bn = U.block_n(N)
    dw = empty((B, H, N), dtype=w.dtype, device=w.device)
    dgamma = empty((B, H), dtype=gamma.dtype, device=w.device)
    sharpen_bwd_kernel[(B * H,)](
        w, gamma, grad, dw, dgamma, N, BN=bn, CDT=U.tl_compute_dtype(w.dtype),
        **U.launch(bn),
    )  # fmt: skip
    return dw, dgamma
