"""Triton backend: fused NTM memory ops with hand-written backwards (kernels in
``ntm_fast._kernels``, source folder ``kernels/``).

Each public function validates its arguments with :mod:`ntm_fast.validation` (same messages as
every backend), checks that Triton can run on the tensors' device, and calls a
``torch.library.custom_op`` in the ``ntm_fast_triton`` namespace (``address_fwd``,
``address_bwd``, ...). The forward ops have a fake (meta) implementation and an autograd
formula whose backward is itself a custom op, so ``torch.compile(fullgraph=True)`` traces
through and ``torch.library.opcheck`` passes. The ops, their schemas, fakes, autograd formulas
and the public functions are all derived from :mod:`ntm_fast.op_table`. Conventions are those
of :mod:`ntm_fast.reference`.

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

from .backends import BackendUnavailableError
from .op_table import OP_NAMES, OPS, backend_functions, register_fakes_and_autograd

try:
    import triton  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    _IMPORT_ERROR: str | None = f"triton is not importable ({exc}); pip install triton"
else:
    _IMPORT_ERROR = None

__all__ = [*OP_NAMES, "unavailable_reason"]  # the op functions: defined from the table below


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


def _define(name: str, args: Sequence[str], n_out: int, launch: Callable[..., object]) -> None:
    """Register ``ntm_fast_triton::<name>`` running ``launch`` on contiguous inputs."""
    outs = "Tensor" if n_out == 1 else "(" + ", ".join(["Tensor"] * n_out) + ")"
    schema = "(" + ", ".join(f"Tensor {a}" for a in args) + ") -> " + outs

    def impl(*tensors: Tensor):
        _require(tensors[0].device)
        tensors = [t.contiguous() for t in tensors]  # a copy only where the layout needs one
        with _device_guard(tensors[0].device):
            return launch(*tensors)

    torch.library.custom_op(f"ntm_fast_triton::{name}", mutates_args=(), schema=schema)(impl)


def _k(module: str, fn: str):
    """The launcher ``fn`` of ``ntm_fast._kernels.<module>``, imported on first call (the
    ``@triton.jit`` functions read TRITON_INTERPRET when they are created)."""

    def call(*tensors):
        return getattr(importlib.import_module(f"ntm_fast._kernels.{module}"), fn)(*tensors)

    return call


# ---- the custom ops, their fakes and autograd, and the backend functions: from the op table ----

for _spec in OPS.values():
    # kernels/<op>.py holds the launchers <op>_fwd(*args) and <op>_bwd(grad, *args)
    _op = _spec.name
    _define(f"{_op}_fwd", _spec.args, 1, _k(_op, f"{_op}_fwd"))
    _define(f"{_op}_bwd", ["grad", *_spec.args], len(_spec.args), _k(_op, f"{_op}_bwd"))
register_fakes_and_autograd("ntm_fast_triton", "ntm_fast Triton")


globals().update(
    backend_functions(
        __name__,
        lambda t: _require(t.device),
        lambda name: getattr(torch.ops.ntm_fast_triton, f"{name}_fwd").default,
    )
)
