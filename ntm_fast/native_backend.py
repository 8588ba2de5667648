"""The native backend: the C++ (CPU) and CUDA kernels of ``csrc/``, registered as torch ops
``torch.ops.ntm_fast.<op>_fwd`` / ``<op>_bwd`` by the extension ``ntm_fast._C``.

This module gives them the backend contract of :mod:`ntm_fast.backends`: the functions of
:mod:`ntm_fast.reference` with the same signatures, validation and conventions, differentiable
through ``torch.library.register_autograd`` and traceable by ``torch.compile`` through
``torch.library.register_fake`` (no graph breaks). The extension import is guarded: without
it this module still imports and :func:`unavailable_reason` says what is missing.

Example:
    >>> from ntm_fast import native_backend as nb
    >>> nb.unavailable_reason(torch.device("cpu")) is None  # doctest: +SKIP
    True
    >>> w = nb.address(memory, key, beta, gate, shift, gamma, w_prev)  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _buffers, validation
from .autograd_checks import refuse_double_backward

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

_BUILD_HINT = (
    "build it with `pip install --no-build-isolation -e .` (torch must be importable at build "
    "time; NTM_FAST_NO_NATIVE=1 is what skips it)"
)

try:
    from . import _C
except ImportError as exc:  # not built, or built against another torch
    _C = None
    _IMPORT_ERROR: str | None = f"{type(exc).__name__}: {exc}"
else:
    _IMPORT_ERROR = None


def unavailable_reason(device: torch.device | str) -> str | None:
    """None when the native kernels can run on ``device``, else what is missing and how to
    get it."""
    device = torch.device(device)
    if _C is None:
        return f"the native extension ntm_fast._C is not available ({_IMPORT_ERROR}); {_BUILD_HINT}"
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if not _C.built_with_cuda():
            return (
                "the native extension ntm_fast._C was built without CUDA (a CPU-only torch or no "
                "nvcc at build time); rebuild it with a CUDA torch and nvcc (CUDA_HOME), e.g. "
                '`TORCH_CUDA_ARCH_LIST="9.0" pip install --no-build-isolation -e .`'
            )
        if not torch.cuda.is_available():
            return "no CUDA device is available to torch"
        return None
    return f"the native kernels run on cpu and cuda devices only, got {device.type!r}"


# ---- NaN poisoning: the C++ side allocates the outputs, so mirror _buffers' switch there ------

_poison_state = [None]


def _sync_poison() -> None:
    # Plain Python state: skipped while torch.compile traces (the eager switch stays in force).
    if torch.compiler.is_compiling():
        return
    if _C is None:
        raise RuntimeError(f"ntm_fast native backend: {unavailable_reason('cpu')}")
    enabled = _buffers.poison_enabled()
    if enabled != _poison_state[0]:
        _C.set_poison(enabled)
        _poison_state[0] = enabled


# ---- fake (meta) and autograd registrations ---------------------------------------------------


def _register() -> None:
    lib = "ntm_fast::"

    def fake_like(*shapes_of):
        def fake(*args):
            outs = tuple(args[i].new_empty(args[i].shape) for i in shapes_of)
            return outs if len(outs) > 1 else outs[0]

        return fake

    # Forward fakes: the output shape of each op.
    @torch.library.register_fake(lib + "content_address_fwd")
    def _(memory, key, beta):
        return memory.new_empty((key.shape[0], key.shape[1], memory.shape[1]))

    @torch.library.register_fake(lib + "address_fwd")
    def _(memory, key, beta, gate, shift, gamma, w_prev):
        return w_prev.new_empty(w_prev.shape)

    @torch.library.register_fake(lib + "read_fwd")
    def _(memory, w):
        return memory.new_empty((w.shape[0], w.shape[1], memory.shape[2]))

    torch.library.register_fake(lib + "interpolate_fwd", fake_like(0))
    torch.library.register_fake(lib + "shift_convolve_fwd", fake_like(0))
    torch.library.register_fake(lib + "sharpen_fwd", fake_like(0))
    torch.library.register_fake(lib + "write_fwd", fake_like(0))

    # Backward fakes: one gradient per input, shaped like it (args[0] is the upstream grad).
    for name, n_inputs in (
        ("content_address", 3),
        ("interpolate", 3),
        ("shift_convolve", 2),
        ("sharpen", 2),
        ("address", 7),
        ("read", 2),
        ("write", 4),
    ):
        torch.library.register_fake(f"{lib}{name}_bwd", fake_like(*range(1, n_inputs + 1)))

        bwd_op = getattr(torch.ops.ntm_fast, f"{name}_bwd").default

        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        def backward(ctx, grad, _bwd_op=bwd_op, _name=name):
            refuse_double_backward(f"ntm_fast native {_name}")
            return tuple(_bwd_op(grad, *ctx.saved_tensors))

        torch.library.register_autograd(f"{lib}{name}_fwd", backward, setup_context=setup_context)


class _Missing:
    """Stands in for ``torch.ops.ntm_fast`` when the extension is absent: fails loudly."""

    def __getattr__(self, name: str):
        raise RuntimeError(f"ntm_fast native backend: {unavailable_reason('cpu')}")


if _C is not None:
    _register()
    _C.set_poison(_buffers.poison_enabled())
    _poison_state[0] = _buffers.poison_enabled()
    _ops = torch.ops.ntm_fast
else:
    _ops = _Missing()


# ---- the backend functions --------------------------------------------------------------------


def content_address(memory: Tensor, key: Tensor, beta: Tensor) -> Tensor:
    """See :func:`ntm_fast.reference.content_address`."""
    validation.check_content_address(memory, key, beta)
    _sync_poison()
    return _ops.content_address_fwd(memory, key, beta)


def interpolate(w_content: Tensor, w_prev: Tensor, gate: Tensor) -> Tensor:
    """See :func:`ntm_fast.reference.interpolate`."""
    validation.check_interpolate(w_content, w_prev, gate)
    _sync_poison()
    return _ops.interpolate_fwd(w_content, w_prev, gate)


def shift_convolve(w: Tensor, shift: Tensor) -> Tensor:
    """See :func:`ntm_fast.reference.shift_convolve`."""
    validation.check_shift_convolve(w, shift)
    _sync_poison()
    return _ops.shift_convolve_fwd(w, shift)


def sharpen(w: Tensor, gamma: Tensor) -> Tensor:
    """See :func:`ntm_fast.reference.sharpen`."""
    validation.check_sharpen(w, gamma)
    _sync_poison()
    return _ops.sharpen_fwd(w, gamma)


def address(
    memory: Tensor,
    key: Tensor,
    beta: Tensor,
    gate: Tensor,
    shift: Tensor,
    gamma: Tensor,
    w_prev: Tensor,
) -> Tensor:
    """See :func:`ntm_fast.reference.address`: one fused pass per (batch, head)."""
    validation.check_address(memory, key, beta, gate, shift, gamma, w_prev)
    _sync_poison()
    return _ops.address_fwd(memory, key, beta, gate, shift, gamma, w_prev)


def read(memory: Tensor, w: Tensor) -> Tensor:
    """See :func:`ntm_fast.reference.read`."""
    validation.check_read(memory, w)
    _sync_poison()
    return _ops.read_fwd(memory, w)


def write(memory: Tensor, w: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """See :func:`ntm_fast.reference.write`."""
    validation.check_write(memory, w, erase, add)
    _sync_poison()
    return _ops.write_fwd(memory, w, erase, add)
