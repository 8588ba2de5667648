"""The memory ops with a ``backend=`` switch: ``"reference"``, ``"triton"``, ``"native"``
or ``"auto"`` (see :mod:`ntm_fast.backends` for what ``auto`` picks).

Every backend validates its arguments with :mod:`ntm_fast.validation`, so all reject the same
bad inputs with the same messages, and all follow the conventions of :mod:`ntm_fast.reference`
(the equations, and the edge cases: zero-norm keys and rows, the sharpening's scale-free form,
half-precision inputs computed in float32). Shapes are batch-first with a head dimension:
B batch, H heads, N memory slots, W slot width, S = 2k+1 shifts for offsets -k..k; every
dimension must be >= 1. ``backend``: ``"auto"`` (default: the native kernels where built,
else the reference ops with a one-time warning), ``"native"``, ``"triton"`` or
``"reference"``; an explicit backend that cannot run on the inputs' device raises
:class:`ntm_fast.BackendUnavailableError` saying why. All inputs of one call share a dtype
(float16, bfloat16, float32 or float64) and a device; outputs have that dtype and device. A
NaN input gives NaN outputs (and gradients) in the same places on every backend. Every op
is differentiable.

Example::

    import torch
    from ntm_fast import ops

    B, H, N, W = 2, 1, 16, 8
    memory = torch.randn(B, N, W)
    key, beta = torch.randn(B, H, W), torch.ones(B, H)
    w = ops.content_address(memory, key, beta)  # (B, H, N), rows sum to 1
    r = ops.read(memory, w)  # (B, H, W)
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import backends

__all__ = [
    "address",
    "content_address",
    "interpolate",
    "read",
    "sharpen",
    "shift_convolve",
    "write",
]


def _device(name: str, t: object) -> torch.device:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    return t.device


def content_address(memory: Tensor, key: Tensor, beta: Tensor, *, backend: str = "auto") -> Tensor:
    """Content weighting, eqs. (5)-(6): ``w_i = softmax_i(β · K(k, M_i))`` with the cosine
    similarity ``K(k, M_i) = k·M_i / (‖k‖ ‖M_i‖ + ε)``.

    Args:
        memory: `(B, N, W)` memory matrix, one per sequence.
        key: `(B, H, W)` one key per head.
        beta: `(B, H)` key strength β >= 0 (0 gives the uniform weighting).
        backend: "auto", "native", "triton" or "reference" (see the module docstring).

    Returns:
        `(B, H, N)` content weighting; each row sums to 1.
    """
    return backends.get(backend, _device("memory", memory)).content_address(memory, key, beta)


def interpolate(
    w_content: Tensor, w_prev: Tensor, gate: Tensor, *, backend: str = "auto"
) -> Tensor:
    """Gated weighting, eq. (7): ``w^g = g · w_content + (1 - g) · w_prev``.

    Args:
        w_content: `(B, H, N)` content weighting.
        w_prev: `(B, H, N)` each head's weighting from the previous time step.
        gate: `(B, H)` interpolation gate g in [0, 1] (1 keeps only the content weighting).
        backend: "auto", "native", "triton" or "reference" (see the module docstring).

    Returns:
        `(B, H, N)` gated weighting.
    """
    mod = backends.get(backend, _device("w_content", w_content))
    return mod.interpolate(w_content, w_prev, gate)


def shift_convolve(w: Tensor, shift: Tensor, *, backend: str = "auto") -> Tensor:
    """Circular shift convolution, eq. (8): ``w̃_i = Σ_{d=-k..k} s_d · w_{(i-d) mod N}``.

    Args:
        w: `(B, H, N)` weighting.
        shift: `(B, H, S)` shift distribution, S = 2k+1 odd with 1 <= S <= N; index j is
            offset ``j - k``, so a one-hot on index k+1 (offset +1) moves slot j to j+1.
        backend: "auto", "native", "triton" or "reference" (see the module docstring).

    Returns:
        `(B, H, N)` shifted weighting.
    """
    return backends.get(backend, _device("w", w)).shift_convolve(w, shift)


def sharpen(w: Tensor, gamma: Tensor, *, backend: str = "auto") -> Tensor:
    """Sharpening, eq. (9): ``w_i = w̃_i^γ / Σ_j w̃_j^γ``, evaluated in the scale-free form
    ``r = w̃ / max_j w̃_j`` so the normaliser cannot underflow (γ up to 50).

    Args:
        w: `(B, H, N)` non-negative weighting w̃.
        gamma: `(B, H)` sharpening exponent γ >= 1.
        backend: "auto", "native", "triton" or "reference" (see the module docstring).

    Returns:
        `(B, H, N)` sharpened weighting; each row sums to 1 (an all-zero row stays 0).
    """
    return backends.get(backend, _device("w", w)).sharpen(w, gamma)


def address(
    memory: Tensor,
    key: Tensor,
    beta: Tensor,
    gate: Tensor,
    shift: Tensor,
    gamma: Tensor,
    w_prev: Tensor,
    *,
    backend: str = "auto",
) -> Tensor:
    """The whole addressing pipeline of Figure 2, eqs. (5)-(9), for every head:
    content weighting, interpolation with the previous weighting, shift, sharpening (one
    fused kernel on the fast backends).

    Args:
        memory: `(B, N, W)` memory matrix.
        key: `(B, H, W)` one key per head.
        beta: `(B, H)` key strength β >= 0.
        gate: `(B, H)` interpolation gate g in [0, 1].
        shift: `(B, H, S)` shift distribution, S = 2k+1 odd with 1 <= S <= N.
        gamma: `(B, H)` sharpening exponent γ >= 1.
        w_prev: `(B, H, N)` each head's weighting from the previous time step.
        backend: "auto", "native", "triton" or "reference" (see the module docstring).

    Returns:
        `(B, H, N)` the new weighting of every head; each row sums to 1.
    """
    mod = backends.get(backend, _device("memory", memory))
    return mod.address(memory, key, beta, gate, shift, gamma, w_prev)


def read(memory: Tensor, w: Tensor, *, backend: str = "auto") -> Tensor:
    """Read vectors, eq. (2): ``r^h = Σ_i w^h_i M_i`` for every head.

    Args:
        memory: `(B, N, W)` memory matrix.
        w: `(B, H, N)` read weightings, one per head.
        backend: "auto", "native", "triton" or "reference" (see the module docstring).

    Returns:
        `(B, H, W)` one read vector per head.
    """
    return backends.get(backend, _device("memory", memory)).read(memory, w)


def write(
    memory: Tensor, w: Tensor, erase: Tensor, add: Tensor, *, backend: str = "auto"
) -> Tensor:
    """Erase then add, eqs. (3)-(4), all heads' erases before all adds:
    ``M'_i = M_i ⊙ Π_h (1 - w^h_i e^h) + Σ_h w^h_i a^h``.

    Args:
        memory: `(B, N, W)` memory matrix (not modified).
        w: `(B, H, N)` write weightings, one per head.
        erase: `(B, H, W)` erase vectors e^h in [0, 1].
        add: `(B, H, W)` add vectors a^h.
        backend: "auto", "native", "triton" or "reference" (see the module docstring).

    Returns:
        `(B, N, W)` the new memory.
    """
    return backends.get(backend, _device("memory", memory)).write(memory, w, erase, add)
