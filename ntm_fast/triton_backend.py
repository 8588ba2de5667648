"""Triton backend: fused NTM memory ops with hand-written backwards (kernels in
``ntm_fast._kernels``, source folder ``kernels/``).

Each public function validates its arguments with :mod:`ntm_fast.validation` (same messages as
every backend), checks that Triton can run on the tensors' device, and calls a
``torch.library.custom_op`` in the ``ntm_fast_triton`` namespace (``address_fwd``,
``address_bwd``, ...). The forward ops have a fake (meta) implementation and an autograd
formula whose backward is itself a custom op, so ``torch.compile(fullgraph=True)`` traces
through and ``torch.library.opcheck`` passes. Conventions are those of
:mod:`ntm_fast.reference`.

Triton runs on CUDA tensors, and on CPU tensors only under ``TRITON_INTERPRET=1`` (set before
the kernels are first imported; a slow test mode).

Example:
    >>> w = triton_backend.address(memory, key, beta, gate, shift, gamma, w_prev)  # (B, H, N)
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from . import validation
from .autograd_checks import refuse_double_backward
from .backends import BackendUnavailableError

try:
    import triton  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    _IMPORT_ERROR: str | None = f"triton is not importable ({exc}); pip install triton"
else:
    _IMPORT_ERROR = None

__all__ = [
    "address",
    "content_address",
    "interpolate",
    "read",
    "sharpen",
    "shift_convolve",
    "unavailable_reason",
    "write",
]


def unavailable_reason(device: torch.device | str) -> str | None:
    """None when the Triton kernels can run on ``device``, else what is missing."""
    device = torch.device(device)
    if _IMPORT_ERROR is not None:
        return _IMPORT_ERROR
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "Triton needs a CUDA device, but torch.cuda.is_available() is False"
        return None
    if device.type == "cpu":
        if os.environ.get("TRITON_INTERPRET") == "1":
            return None
        return (
            "Triton needs a CUDA device; CPU tensors run only under the Triton interpreter "
            "(set TRITON_INTERPRET=1 before ntm_fast's kernels are imported; slow, for tests)"
        )
    return f"Triton cannot run on {device.type} tensors (needs a CUDA device)"


def _require(device: torch.device) -> None:
    reason = unavailable_reason(device)
    if reason is not None:
        raise BackendUnavailableError(f"backend='triton' on {device}: {reason}")


def _device_guard(device: torch.device):
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _define(
    name: str,
    args: Sequence[str],
    n_out: int,
    launch: Callable[..., object],
    fake: Callable[..., object],
):
    """Register ``ntm_fast_triton::<name>`` running ``launch`` on contiguous inputs."""
    outs = "Tensor" if n_out == 1 else "(" + ", ".join(["Tensor"] * n_out) + ")"
    schema = "(" + ", ".join(f"Tensor {a}" for a in args) + ") -> " + outs

    def impl(*tensors: Tensor):
        _require(tensors[0].device)
        tensors = [t.contiguous() for t in tensors]  # a copy only where the layout needs one
        with _device_guard(tensors[0].device):
            return launch(*tensors)

    op = torch.library.custom_op(f"ntm_fast_triton::{name}", mutates_args=(), schema=schema)(impl)
    op.register_fake(fake)
    return op


def _grads_fake(grad: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
    return tuple(t.new_empty(t.shape) for t in inputs)


def _pair(name: str, args: Sequence[str], fwd_launch, bwd_launch, fwd_fake):
    """A forward op and its backward op, with the autograd formula linking them."""
    fwd = _define(f"{name}_fwd", args, 1, fwd_launch, fwd_fake)
    bwd = _define(f"{name}_bwd", ["grad", *args], len(args), bwd_launch, _grads_fake)

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def backward(ctx, grad):
        refuse_double_backward(f"ntm_fast Triton {name}")
        return tuple(bwd(grad, *ctx.saved_tensors))

    fwd.register_autograd(backward, setup_context=setup_context)
    return fwd, bwd


def _k(module: str, fn: str):
    """The launcher ``fn`` of ``ntm_fast._kernels.<module>``, imported on first call (the
    ``@triton.jit`` functions read TRITON_INTERPRET when they are created)."""

    def call(*tensors):
        return getattr(importlib.import_module(f"ntm_fast._kernels.{module}"), fn)(*tensors)

    return call


def _bhn_fake(memory, key, *rest):
    return memory.new_empty((memory.shape[0], key.shape[1], memory.shape[1]))


_content_fwd, _content_bwd = _pair(
    "content_address",
    ["memory", "key", "beta"],
    _k("content_address", "content_address_fwd"),
    _k("content_address", "content_address_bwd"),
    _bhn_fake,
)
_interpolate_fwd, _interpolate_bwd = _pair(
    "interpolate",
    ["w_content", "w_prev", "gate"],
    _k("interpolate", "interpolate_fwd"),
    _k("interpolate", "interpolate_bwd"),
    lambda wc, wp, g: wc.new_empty(wc.shape),
)
_shift_fwd, _shift_bwd = _pair(
    "shift_convolve",
    ["w", "shift"],
    _k("shift_convolve", "shift_convolve_fwd"),
    _k("shift_convolve", "shift_convolve_bwd"),
    lambda w, s: w.new_empty(w.shape),
)
_sharpen_fwd, _sharpen_bwd = _pair(
    "sharpen",
    ["w", "gamma"],
    _k("sharpen", "sharpen_fwd"),
    _k("sharpen", "sharpen_bwd"),
    lambda w, g: w.new_empty(w.shape),
)
_address_fwd, _address_bwd = _pair(
    "address",
    ["memory", "key", "beta", "gate", "shift", "gamma", "w_prev"],
    _k("address", "address_fwd"),
    _k("address", "address_bwd"),
    _bhn_fake,
)
_read_fwd, _read_bwd = _pair(
    "read",
    ["memory", "w"],
    _k("read", "read_fwd"),
    _k("read", "read_bwd"),
    lambda m, w: m.new_empty((m.shape[0], w.shape[1], m.shape[2])),
)
_write_fwd, _write_bwd = _pair(
    "write",
    ["memory", "w", "erase", "add"],
    _k("write", "write_fwd"),
    _k("write", "write_bwd"),
    lambda m, w, e, a: m.new_empty(m.shape),
)


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
    _require(memory.device)
    return _content_fwd(memory, key, beta)


def interpolate(w_content: Tensor, w_prev: Tensor, gate: Tensor) -> Tensor:
    """Gated weighting, eq. (7): ``g · w_content + (1 - g) · w_prev``.

    Args:
        w_content: `(B, H, N)` content weighting.
        w_prev: `(B, H, N)` the head's weighting from the previous step.
        gate: `(B, H)` interpolation gate in (0, 1).

    Returns:
        `(B, H, N)`.
    """
    validation.check_interpolate(w_content, w_prev, gate)
    _require(w_content.device)
    return _interpolate_fwd(w_content, w_prev, gate)


def shift_convolve(w: Tensor, shift: Tensor) -> Tensor:
    """Circular shift convolution, eq. (8): ``w̃_i = Σ_{d=-k..k} s_d · w_{(i-d) mod N}``.

    Args:
        w: `(B, H, N)` weighting.
        shift: `(B, H, S)` shift distribution, S = 2k+1 odd, 1 <= S <= N; index j is offset
            ``j - k`` (a one-hot on offset +1 moves slot j to j+1).

    Returns:
        `(B, H, N)`.
    """
    validation.check_shift_convolve(w, shift)
    _require(w.device)
    return _shift_fwd(w, shift)


def sharpen(w: Tensor, gamma: Tensor) -> Tensor:
    """Sharpening, eq. (9), scale-free: ``r = w̃ / max w̃``, ``w = r^γ / Σ_j r_j^γ``.

    Args:
        w: `(B, H, N)` non-negative weighting w̃.
        gamma: `(B, H)` sharpening exponent, γ >= 1.

    Returns:
        `(B, H, N)`.
    """
    validation.check_sharpen(w, gamma)
    _require(w.device)
    return _sharpen_fwd(w, gamma)


def address(
    memory: Tensor,
    key: Tensor,
    beta: Tensor,
    gate: Tensor,
    shift: Tensor,
    gamma: Tensor,
    w_prev: Tensor,
) -> Tensor:
    """The fused addressing pipeline of Figure 2, eqs. (5)-(9), for every head in one launch.

    Args:
        memory: `(B, N, W)`.
        key: `(B, H, W)`.
        beta: `(B, H)` key strength.
        gate: `(B, H)` interpolation gate.
        shift: `(B, H, S)` shift distribution.
        gamma: `(B, H)` sharpening exponent.
        w_prev: `(B, H, N)` previous weighting.

    Returns:
        `(B, H, N)` the new weighting of every head.
    """
    validation.check_address(memory, key, beta, gate, shift, gamma, w_prev)
    _require(memory.device)
    return _address_fwd(memory, key, beta, gate, shift, gamma, w_prev)


def read(memory: Tensor, w: Tensor) -> Tensor:
    """Read vectors, eq. (2): ``r = Σ_i w_i M_i`` for every head.

    Args:
        memory: `(B, N, W)`.
        w: `(B, H, N)` read weightings.

    Returns:
        `(B, H, W)`.
    """
    validation.check_read(memory, w)
    _require(memory.device)
    return _read_fwd(memory, w)


def write(memory: Tensor, w: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """Erase then add for all write heads in one launch, eqs. (3)-(4):
    ``M'_i = M_i ⊙ Π_h (1 - w^h_i e^h) + Σ_h w^h_i a^h``.

    Args:
        memory: `(B, N, W)`.
        w: `(B, H, N)` write weightings.
        erase: `(B, H, W)` erase vectors in (0, 1).
        add: `(B, H, W)` add vectors.

    Returns:
        `(B, N, W)` the new memory (the input is not modified).
    """
    validation.check_write(memory, w, erase, add)
    _require(memory.device)
    return _write_fwd(memory, w, erase, add)
