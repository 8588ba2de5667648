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

from ntm_fast.numerics import COSINE_EPS, NORM_SQ_HI, NORM_SQ_LO, SHARPEN_TINY

#: Largest tile over N. Rows longer than this are walked in several tiles; tests lower it
#: (``set_max_block_n``) to exercise the tiled path with small N under the interpreter.
MAX_BLOCK_N = 1024
#: Target number of elements in a 2-D (N, W) tile.
TILE_ELEMS = 8192

EPS = tl.constexpr(COSINE_EPS)
TINY = tl.constexpr(SHARPEN_TINY)
NORM_SQ_LO = tl.constexpr(NORM_SQ_LO)
NORM_SQ_HI = tl.constexpr(NORM_SQ_HI)
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


def block_w_fwd(W: int, bn: int) -> int:
    """The forward content/addressing tile's width: :func:`block_w`, halved at BN >= 1024,
    where the scale-safe rescaled pass (docs/math.md#scale-safe-norms) needs more than 255
    registers per thread at 8 warps (it spilled 100-370 B on sm_80 and sm_90)."""
    bw = block_w(W, bn)
    return max(1, bw // 2) if bn >= 1024 else bw


def bwd_tile(N: int, W: int) -> tuple[int, int, dict[str, int]]:
    """``(BN, BW, launch options)`` of the content and addressing backward kernels: a quarter
    of ``TILE_ELEMS`` on the warps of half of it, so 8 tile values a thread. At 16 both kernels
    sat at 255 of 255 registers (triton 3.9), triton 3.6 spilled 8 B (content_address_bwd,
    float32, sm_90) and float64 up to 1.1 KB; at 8 the float32 and half kernels take 167-209
    registers and float64 spills nothing (both Tritons, sm_80 and sm_90; gpu-resources.md)."""
    bn = block_n(N)
    bw = block_w(W, 4 * bn)
    return bn, bw, launch(2 * bn * bw)


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
def inverse_pow2_scale(x, CDT: tl.constexpr):
    """2^-e for x = m 2^e (m in [0.5, 1)), e clamped so 2^±e are normal; 1 for x = 0, inf or
    NaN (ntm_fast.numerics.inverse_pow2_scale): read off the exponent bits, so it is exact."""
    if CDT == tl.float64:
        e = ((x.to(tl.int64, bitcast=True) >> 52) & 0x7FF) - 1022
        e = tl.minimum(tl.maximum(e, -1022), 1022)
        inv = ((1023 - e) << 52).to(tl.float64, bitcast=True)
    else:
        e = ((x.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 126
        e = tl.minimum(tl.maximum(e, -126), 126)
        inv = ((127 - e) << 23).to(tl.float32, bitcast=True)
    return tl.where((x > 0) & (x - x == 0), inv, 1.0)


@triton.jit
def plain_sq(sq):
    """The plain squared norm is in the fast-path range (docs/math.md#scale-safe-norms)."""
    return (sq >= NORM_SQ_LO) & (sq <= NORM_SQ_HI)


@triton.jit
def cos_denom(nk, nm, kinv, rinv, CDT: tl.constexpr):
    """D~ = ‖k~‖‖M~_i‖ + ε s_k^-1 s_i^-1, floored at the smallest normal number (a zero
    vector against a huge one; NaN stays NaN). K = k~·M~_i / D~ (ntm_math.h)."""
    lo = 2.2250738585072014e-308 if CDT == tl.float64 else 1.1754943508222875e-38
    d = nk * nm + EPS * kinv * rinv
    return tl.where(d < lo, lo, d)


@triton.jit
def grad_scale(nk, nm, self_inv, other_inv, CDT: tl.constexpr):
    """1 / (s_self D~), capped at the largest finite value (cosine_grad_scale in ntm_math.h):
    ∂K/∂k = P (M~ - K ‖M~‖/‖k~‖ k~), P = grad_scale(.., kinv, rinv); Q likewise for M."""
    big = 1.7976931348623157e308 if CDT == tl.float64 else 3.4028234663852886e38
    p = 1.0 / (nk * nm / self_inv + EPS * other_inv)
    return tl.where(p > big, big, p)


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
        # divide by the row maximum last: 1/max overflows for a subnormal maximum, while the
        # gradient itself may be finite (docs/math.md#scale-safe-norms)
        b_dx = gamma * b_p * (b_g - wg) / ssum / mx
        tl.store(p_dx + o_n, to_grad(b_dx, p_dx), mask=m_n)
    return d_gamma
