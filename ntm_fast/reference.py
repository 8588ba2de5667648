"""Plain-PyTorch NTM memory operations: the contract every fast backend is tested against.

Equations are those of Graves, Wayne & Danihelka (2014), as written out in ``docs/math.md``
(gradients: ``docs/math-backward.md``). Shapes are batch-first with a head dimension:
B batch, H heads, N memory slots, W slot width, S = 2k+1 shifts for offsets -k..k.

Conventions (shared with every backend):

* Cosine similarity ``K_i = k·M_i / (‖k‖‖M_i‖ + ε)`` with ε = :data:`COSINE_EPS`; a zero-norm
  key or row gives K = 0 and a finite gradient (the unit vector of a zero vector is taken as 0):
  docs/math.md#content-addressing, docs/math.md#zero-norm-keys-and-rows. Norms and dot
  products are computed on power-of-two-rescaled vectors, so any finite input works
  (docs/math.md#scale-safe-norms).
* Shift direction: ``shift[..., j]`` is the weight of offset ``d = j - k``, and
  ``w̃_i = Σ_d s_d · w_{(i-d) mod N}``: a weight of 1 on offset +1 moves a focus at slot j to
  slot j+1 (eq. 8; docs/math.md#circular-shift).
* Sharpening is evaluated as ``r = w̃ / max_j w̃_j``, ``w = r^γ / Σ_j r_j^γ``, which equals
  eq. (9) exactly but keeps the normaliser >= 1 so it cannot underflow (γ up to 50;
  docs/math.md#sharpening).
* Half-precision inputs (float16, bfloat16) are computed in float32 and cast back; float64
  stays float64. Outputs have the dtype of the inputs. Gradients too large for a half dtype
  saturate at its largest finite value (see :func:`ntm_fast.numerics.saturate`):
  docs/math.md#compute-dtypes, docs/math.md#gradient-saturation.
* ``write`` applies all heads' erases before all adds (eqs. 3-4; docs/math.md#write).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import validation
from .numerics import COSINE_EPS, SHARPEN_TINY, compute_dtype, inverse_pow2_scale, saturate

__all__ = [
    "address",
    "content_address",
    "interpolate",
    "read",
    "sharpen",
    "shift_convolve",
    "uniform_shift",
    "write",
]


class _Upcast(torch.autograd.Function):
    """``t.to(dtype)`` whose backward casts the gradient back with :func:`saturate`."""

    @staticmethod
    def forward(ctx, t: Tensor, dtype: torch.dtype) -> Tensor:
        ctx.dtype = t.dtype
        return t.to(dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return saturate(grad, ctx.dtype), None


def _up(*tensors: Tensor) -> list[Tensor]:
    dt = compute_dtype(tensors[0].dtype)
    return [t if t.dtype == dt else _Upcast.apply(t, dt) for t in tensors]


def _content_address(memory: Tensor, key: Tensor, beta: Tensor) -> Tensor:
    # Scale-safe (docs/math.md#scale-safe-norms): the cosine runs in float64 (every square and
    # product of float32 values is in its range), on vectors multiplied by an exact, detached
    # power of two s^-1, so K = k̃·M̃ / (‖k̃‖‖M̃‖ + ε s_k^-1 s_M^-1) equals eq. (6) exactly and
    # no norm or dot product overflows. The denominator is floored at the smallest normal
    # number: it is below that only for a zero vector against a huge one (where K = 0).
    wide = torch.float64
    inv_k = inverse_pow2_scale(key.detach().abs().amax(-1, keepdim=True).to(wide))  # (B, H, 1)
    inv_m = inverse_pow2_scale(memory.detach().abs().amax(-1, keepdim=True).to(wide))
    k, m = key.to(wide) * inv_k, memory.to(wide) * inv_m
    dot = torch.einsum("bhw,bnw->bhn", k, m)
    key_norm = torch.linalg.vector_norm(k, dim=-1).unsqueeze(-1)  # (B, H, 1)
    row_norm = torch.linalg.vector_norm(m, dim=-1).unsqueeze(1)  # (B, 1, N)
    eps = COSINE_EPS * inv_k * inv_m.transpose(1, 2)  # (B, H, N)
    denom = (key_norm * row_norm + eps).clamp_min(torch.finfo(wide).tiny)
    similarity = (dot / denom).to(beta.dtype)
    return torch.softmax(beta.unsqueeze(-1) * similarity, dim=-1)  # softmax subtracts the max


def _interpolate(w_content: Tensor, w_prev: Tensor, gate: Tensor) -> Tensor:
    g = gate.unsqueeze(-1)
    return g * w_content + (1 - g) * w_prev


def _shift_convolve(w: Tensor, shift: Tensor) -> Tensor:
    N, S = w.shape[-1], shift.shape[-1]
    k = (S - 1) // 2
    # Circularly pad by k on both sides: padded[m] = w[(m - k) mod N]. The window starting at
    # i holds w[(i - k + m) mod N] = w[(i - d) mod N] for d = k - m, i.e. shift index S-1-m.
    padded = torch.cat([w[..., N - k :], w, w[..., :k]], dim=-1)
    windows = padded.unfold(-1, S, 1)  # (B, H, N, S)
    return torch.einsum("bhnm,bhm->bhn", windows, shift.flip(-1))


def _sharpen(w: Tensor, gamma: Tensor) -> Tensor:
    # The scale cancels in eq. (9), so dividing by the (detached) row maximum is exact. Any
    # positive maximum is used as is (a floor such as SHARPEN_TINY would break the scale
    # invariance for rows whose maximum is below it); an all-zero row divides by 1.
    row_max = w.detach().amax(dim=-1, keepdim=True)
    row_max = torch.where(row_max > 0, row_max, torch.ones_like(row_max))
    powered = (w / row_max).pow(gamma.unsqueeze(-1))
    return powered / powered.sum(dim=-1, keepdim=True).clamp_min(SHARPEN_TINY)


def content_address(memory: Tensor, key: Tensor, beta: Tensor) -> Tensor:
    """Content weighting, eqs. (5)-(6): ``softmax_i(β · cos(k, M_i))``.

    Args:
        memory: `(B, N, W)` memory matrix.
        key: `(B, H, W)` one key per head.
        beta: `(B, H)` key strength, β >= 0.

    Returns:
        `(B, H, N)` weighting; each row sums to 1.
    """
    validation.check_content_address(memory, key, beta)
    return _content_address(*_up(memory, key, beta)).to(memory.dtype)


def interpolate(w_content: Tensor, w_prev: Tensor, gate: Tensor) -> Tensor:
    """Gated weighting, eq. (7): ``g · w_content + (1 - g) · w_prev``.

    Args:
        w_content: `(B, H, N)` content weighting.
        w_prev: `(B, H, N)` the head's weighting from the previous step.
        gate: `(B, H)` interpolation gate in (0, 1).
    """
    validation.check_interpolate(w_content, w_prev, gate)
    return _interpolate(*_up(w_content, w_prev, gate)).to(w_content.dtype)


def shift_convolve(w: Tensor, shift: Tensor) -> Tensor:
    """Circular shift convolution, eq. (8): ``w̃_i = Σ_{d=-k..k} s_d · w_{(i-d) mod N}``.

    Args:
        w: `(B, H, N)` weighting.
        shift: `(B, H, S)` shift distribution, S = 2k+1 odd with 1 <= S <= N; index j is
            offset ``j - k``, so a one-hot on index k+1 (offset +1) moves slot j to j+1.
    """
    validation.check_shift_convolve(w, shift)
    return _shift_convolve(*_up(w, shift)).to(w.dtype)


def sharpen(w: Tensor, gamma: Tensor) -> Tensor:
    """Sharpening, eq. (9): ``w_i = w̃_i^γ / Σ_j w̃_j^γ`` (evaluated scale-free, see module doc).

    Args:
        w: `(B, H, N)` non-negative weighting w̃.
        gamma: `(B, H)` sharpening exponent, γ >= 1.
    """
    validation.check_sharpen(w, gamma)
    return _sharpen(*_up(w, gamma)).to(w.dtype)


def address(
    memory: Tensor,
    key: Tensor,
    beta: Tensor,
    gate: Tensor,
    shift: Tensor,
    gamma: Tensor,
    w_prev: Tensor,
) -> Tensor:
    """The full addressing pipeline of Figure 2, eqs. (5)-(9), for every head.

    Args:
        memory: `(B, N, W)`; key: `(B, H, W)`; beta, gate, gamma: `(B, H)`;
        shift: `(B, H, S)`; w_prev: `(B, H, N)`.

    Returns:
        `(B, H, N)` the new weighting of every head.
    """
    validation.check_address(memory, key, beta, gate, shift, gamma, w_prev)
    m, k, b, g, s, y, wp = _up(memory, key, beta, gate, shift, gamma, w_prev)
    w = _sharpen(_shift_convolve(_interpolate(_content_address(m, k, b), wp, g), s), y)
    return w.to(memory.dtype)


def read(memory: Tensor, w: Tensor) -> Tensor:
    """Read vectors, eq. (2): ``r = Σ_i w_i M_i`` for every head.

    Args:
        memory: `(B, N, W)`; w: `(B, H, N)`.

    Returns:
        `(B, H, W)`.
    """
    validation.check_read(memory, w)
    m, ww = _up(memory, w)
    return torch.einsum("bhn,bnw->bhw", ww, m).to(memory.dtype)


def write(memory: Tensor, w: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """Erase then add, eqs. (3)-(4), all heads' erases before all adds.

    ``M'_i = M_i ⊙ Π_h (1 - w^h_i e^h) + Σ_h w^h_i a^h``

    Args:
        memory: `(B, N, W)`; w: `(B, H, N)` write weightings; erase: `(B, H, W)` in (0, 1);
        add: `(B, H, W)`.

    Returns:
        `(B, N, W)` the new memory (the input is not modified).
    """
    validation.check_write(memory, w, erase, add)
    m, ww, e, a = _up(memory, w, erase, add)
    keep = torch.ones_like(m)
    for h in range(ww.shape[1]):  # a product chain: autograd never divides by (1 - w e)
        keep = keep * (1 - ww[:, h, :, None] * e[:, h, None, :])
    return (m * keep + torch.einsum("bhn,bhw->bnw", ww, a)).to(memory.dtype)


def uniform_shift(x: Tensor, shifts: int) -> Tensor:
    """The paper's second shift form: a scalar x read as the lower bound of a width-one
    uniform distribution over integer offsets: ``s(⌊x⌋) = 1 - frac(x)``, ``s(⌊x⌋+1) = frac(x)``.

    Args:
        x: `(B, H)` offsets, expected within ``[-k, k]`` for ``S = shifts = 2k+1``; values
            outside are clamped to that range.
        shifts: S, the number of shift slots (odd).

    Returns:
        `(B, H, S)` shift distribution; index j is offset ``j - k``. x = 6.7 gives
        s(6) = 0.3, s(7) = 0.7. Differentiable in x almost everywhere (d s / d x = ∓1).
    """
    if shifts < 1 or shifts % 2 == 0:
        raise ValueError(f"shifts: expected an odd number >= 1, got {shifts}")
    k = (shifts - 1) // 2
    x = x.clamp(-k, k)
    lower = torch.floor(x).detach()
    frac = x - lower  # in [0, 1); gradient 1 w.r.t. x
    offsets = torch.arange(-k, k + 1, device=x.device, dtype=x.dtype)
    lo = lower.unsqueeze(-1)
    return (offsets == lo) * (1 - frac).unsqueeze(-1) + (offsets == lo + 1) * frac.unsqueeze(-1)
