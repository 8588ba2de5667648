"""Erase then add, eqs. (3)-(4), for any number of write heads in one launch:
``M'_i = M_i ⊙ Π_h (1 - w_hi e_h) + Σ_h w_hi a_h``.

The backward never divides by ``1 - w e`` (it can be exactly 0): the product over the other
heads is a running prefix product times a suffix product recomputed over the later heads.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ntm_fast._buffers import empty
from ntm_fast.numerics import saturate

from . import utils as U


@triton.jit
def write_fwd_kernel(
    p_m, p_w, p_e, p_a, p_out, H, N, W, BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr
):
    """One program per (batch, N tile, W tile), heads in a loop."""
    i_b = tl.program_id(0).to(tl.int64)
    o_n = tl.program_id(1) * BN + tl.arange(0, BN)
    o_w = tl.program_id(2) * BW + tl.arange(0, BW)
    m_n = o_n < N
    m_w = o_w < W
    keep = tl.full([BN, BW], 1.0, CDT)
    add = tl.zeros([BN, BW], dtype=CDT)
    for h in range(H):
        i_bh = i_b * H + h
        b_w = tl.load(p_w + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
        b_e = tl.load(p_e + i_bh * W + o_w, mask=m_w, other=0).to(CDT)
        b_a = tl.load(p_a + i_bh * W + o_w, mask=m_w, other=0).to(CDT)
        keep *= 1 - b_w[:, None] * b_e[None, :]
        add += b_w[:, None] * b_a[None, :]
    o = i_b * N * W + o_n[:, None] * W + o_w[None, :]
    mask = m_n[:, None] & m_w[None, :]
    b_m = tl.load(p_m + o, mask=mask, other=0).to(CDT)
    tl.store(p_out + o, (b_m * keep + add).to(p_out.dtype.element_ty), mask=mask)


@triton.jit
def write_bwd_kernel(
    p_m, p_w, p_e, p_a, p_g, p_dm, p_pdw, p_pde, p_pda, H, N, W,
    BN: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """One program per (batch, N tile, W tile). Writes ∂L/∂M for its tile, and partial sums
    of ∂L/∂w (over this W tile: ``p_pdw`` (B, WT, H, N)) and of ∂L/∂e, ∂L/∂a (over this N
    tile: ``p_pde``, ``p_pda`` (B, NT, H, W)); the launcher sums the partials in order."""
    i_b = tl.program_id(0).to(tl.int64)
    i_n = tl.program_id(1)
    i_w = tl.program_id(2)
    NT = tl.num_programs(1)
    WT = tl.num_programs(2)
    o_n = i_n * BN + tl.arange(0, BN)
    o_w = i_w * BW + tl.arange(0, BW)
    m_n = o_n < N
    m_w = o_w < W
    o = i_b * N * W + o_n[:, None] * W + o_w[None, :]
    mask = m_n[:, None] & m_w[None, :]
    b_m = tl.load(p_m + o, mask=mask, other=0).to(CDT)
    b_g = tl.load(p_g + o, mask=mask, other=0).to(CDT)
    prefix = tl.full([BN, BW], 1.0, CDT)  # Π_{h' < h} (1 - w_h' e_h')
    for h in range(H):
        i_bh = i_b * H + h
        b_w = tl.load(p_w + i_bh * N + o_n, mask=m_n, other=0).to(CDT)
        b_e = tl.load(p_e + i_bh * W + o_w, mask=m_w, other=0).to(CDT)
        b_a = tl.load(p_a + i_bh * W + o_w, mask=m_w, other=0).to(CDT)
        suffix = tl.full([BN, BW], 1.0, CDT)  # Π_{h' > h} (1 - w_h' e_h')
        for h2 in range(h + 1, H):
            b_w2 = tl.load(p_w + (i_b * H + h2) * N + o_n, mask=m_n, other=0).to(CDT)
            b_e2 = tl.load(p_e + (i_b * H + h2) * W + o_w, mask=m_w, other=0).to(CDT)
            suffix *= 1 - b_w2[:, None] * b_e2[None, :]
        b_gmp = b_g * b_m * (prefix * suffix)  # M̄' ⊙ M ⊙ Π_{h' != h}
        b_dw = tl.sum(b_g * b_a[None, :] - b_gmp * b_e[None, :], 1)
        tl.store(p_pdw + ((i_b * WT + i_w) * H + h) * N + o_n, b_dw, mask=m_n)
        b_de = -tl.sum(b_gmp * b_w[:, None], 0)
        b_da = tl.sum(b_g * b_w[:, None], 0)
        o_p = ((i_b * NT + i_n) * H + h) * W + o_w
        tl.store(p_pde + o_p, b_de, mask=m_w)
        tl.store(p_pda + o_p, b_da, mask=m_w)
        prefix *= 1 - b_w[:, None] * b_e[None, :]
    tl.store(p_dm + o, U.to_grad((b_g * prefix), p_dm), mask=mask)


def _blocks(N: int, W: int) -> tuple[int, int]:
    bw = min(triton.next_power_of_2(W), 128)
    bn = max(1, min(triton.next_power_of_2(N), U.MAX_BLOCK_N, 4096 // bw))
    return bn, bw


def write_fwd(memory, w, erase, add) -> torch.Tensor:
    """Args: memory `(B, N, W)`, w `(B, H, N)`, erase/add `(B, H, W)`, contiguous.

    Returns `(B, N, W)` the new memory."""
    B, N, W = memory.shape
    H = w.shape[1]
    bn, bw = _blocks(N, W)
    out = empty((B, N, W), dtype=memory.dtype, device=memory.device)
    write_fwd_kernel[(B, triton.cdiv(N, bn), triton.cdiv(W, bw))](
        memory, w, erase, add, out, H, N, W, BN=bn, BW=bw,
        CDT=U.tl_compute_dtype(memory.dtype), **U.launch(bn * bw),
    )  # fmt: skip
    return out


def write_bwd(grad, memory, w, erase, add):
    """Args: grad `(B, N, W)` and the forward inputs, contiguous.

    Returns the gradients of (memory, w, erase, add)."""
    B, N, W = memory.shape
    H = w.shape[1]
    bn, bw = _blocks(N, W)
    NT, WT = triton.cdiv(N, bn), triton.cdiv(W, bw)
    cdt = U.torch_compute_dtype(memory.dtype)
    dev = memory.device
    dm = empty((B, N, W), dtype=memory.dtype, device=dev)
    pdw = empty((B, WT, H, N), dtype=cdt, device=dev)
    pde = empty((B, NT, H, W), dtype=cdt, device=dev)
    pda = empty((B, NT, H, W), dtype=cdt, device=dev)
    write_bwd_kernel[(B, NT, WT)](
        memory, w, erase, add, grad, dm, pdw, pde, pda, H, N, W, BN=bn, BW=bw,
        CDT=U.tl_compute_dtype(memory.dtype), **U.launch(bn * bw),
    )  # fmt: skip
    dt = memory.dtype
    return dm, saturate(pdw.sum(1), dt), saturate(pde.sum(1), dt), saturate(pda.sum(1), dt)
