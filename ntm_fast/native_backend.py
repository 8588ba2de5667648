"""The native backend: the C++ (CPU) and CUDA kernels of ``csrc/``, registered as torch ops
``torch.ops.ntm_fast.<op>_fwd`` / ``<op>_bwd`` by the extension ``ntm_fast._C``.

This module gives them the backend contract of :mod:`ntm_fast.backends`: the functions of
:mod:`ntm_fast.reference` with the same signatures, validation and conventions, differentiable
through ``torch.library.register_autograd`` and traceable by ``torch.compile`` through
``torch.library.register_fake`` (no graph breaks); all of it derived from
:mod:`ntm_fast.op_table` (the C++ schemas are checked against that table by
tests/ops/test_op_table.py). The extension import is guarded: without
it this module still imports and :func:`unavailable_reason` says what is missing.

Example:
    >>> from ntm_fast import native_backend as nb
    >>> nb.unavailable_reason(torch.device("cpu")) is None  # doctest: +SKIP
    True
    >>> w = nb.address(memory, key, beta, gate, shift, gamma, w_prev)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import _buffers
from .op_table import OP_NAMES, backend_functions, register_fakes_and_autograd

__all__ = [*OP_NAMES, "unavailable_reason"]  # the op functions: defined from the table below

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


class _Missing:
    """Stands in for ``torch.ops.ntm_fast`` when the extension is absent: fails loudly."""

    def __getattr__(self, name: str):
        raise RuntimeError(f"ntm_fast native backend: {unavailable_reason('cpu')}")


if _C is not None:
    register_fakes_and_autograd("ntm_fast", "ntm_fast native")
    _C.set_poison(_buffers.poison_enabled())
    _poison_state[0] = _buffers.poison_enabled()
    _ops = torch.ops.ntm_fast
else:
    _ops = _Missing()


# ---- the backend functions, from the op table ------------------------------------------------


def _forward(name: str) -> Callable[..., Tensor]:
    # looked up per call: without the extension, _ops fails only when an op is used
    return lambda *args: getattr(_ops, f"{name}_fwd")(*args)


globals().update(backend_functions(__name__, lambda t: _sync_poison(), _forward))
