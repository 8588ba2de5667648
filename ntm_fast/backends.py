"""Backend selection for the memory ops.

A backend is a module exposing the functions of :mod:`ntm_fast.reference` (``content_address``,
``interpolate``, ``shift_convolve``, ``sharpen``, ``address``, ``read``, ``write``) with the
same signatures and validation, plus ``unavailable_reason(device) -> str | None``
(``None`` when it can run on that device, else what is missing and how to get it).

``"auto"`` picks, in order:

* CUDA tensors: ``native`` if the extension was built with CUDA, else ``triton``;
* CPU tensors: ``native`` (the C++ CPU kernels); Triton runs on the CPU only under
  ``TRITON_INTERPRET=1`` (a test mode), so ``auto`` never picks it there;
* otherwise ``reference``, with a one-time warning naming what is missing.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType, SimpleNamespace

import torch

from .op_table import OP_NAMES

BACKEND_NAMES = ("reference", "triton", "native")
_MODULES = {
    "reference": "ntm_fast.reference",
    "triton": "ntm_fast.triton_backend",
    "native": "ntm_fast.native_backend",
}
# The torch.ops namespace holding each fast backend's <op>_fwd / <op>_bwd kernels.
_KERNEL_NAMESPACES = {"native": "ntm_fast", "triton": "ntm_fast_triton"}
_warned: set[str] = set()


class BackendUnavailableError(RuntimeError):
    """Raised when an explicitly requested backend cannot run; the message says why."""


_loaded: dict[str, ModuleType] = {}


def module(name: str) -> ModuleType:
    """The module of the concrete backend ``name`` (no availability check)."""
    mod = _loaded.get(name)  # a plain dict lookup once loaded, so torch.compile traces it
    if mod is None:
        mod = _loaded[name] = importlib.import_module(_MODULES[name])
    return mod


_kernels: dict[str, SimpleNamespace] = {}


def kernel_ops(name: str) -> SimpleNamespace | None:
    """Backend ``name``'s raw ``<op>_fwd``/``<op>_bwd`` kernels (no validation, no autograd) as
    attributes, bound to their ``.default`` overloads so a call skips overload resolution; None
    for the reference, which has none."""
    if name not in _KERNEL_NAMESPACES:
        return None
    if name not in _kernels:
        module(name)  # importing the backend registers its ops
        ns = getattr(torch.ops, _KERNEL_NAMESPACES[name])
        _kernels[name] = SimpleNamespace(
            **{
                f"{op}_{d}": getattr(ns, f"{op}_{d}").default
                for op in OP_NAMES
                for d in ("fwd", "bwd")
            }
        )
    return _kernels[name]


def unavailable_reason(name: str, device: torch.device) -> str | None:
    """None when backend ``name`` can run on ``device``, else the reason it cannot."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend: expected one of {(*BACKEND_NAMES, 'auto')}, got {name!r}")
    if name == "reference":
        return None
    try:
        mod = module(name)
    except ImportError as exc:  # e.g. triton not installed
        return f"the {name} backend could not be imported ({exc})"
    return mod.unavailable_reason(device)


def resolve_name(backend: str, device: torch.device) -> str:
    """The concrete backend name ``backend`` means on ``device`` (see module docstring)."""
    if backend != "auto":
        reason = unavailable_reason(backend, device)
        if reason is not None:
            raise BackendUnavailableError(f"backend={backend!r} on {device}: {reason}")
        return backend
    order = ("native", "triton") if device.type == "cuda" else ("native",)
    reasons = []
    for name in order:
        reason = unavailable_reason(name, device)
        if reason is None:
            return name
        reasons.append(f"{name}: {reason}")
    key = f"{device.type}:" + "; ".join(reasons)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(
            f"ntm_fast: no fast backend for {device.type} tensors, using the reference ops "
            f"({'; '.join(reasons)})",
            RuntimeWarning,
            stacklevel=3,
        )
    return "reference"


# Run once while tracing, no graph break under torch.compile: what
# torch.compiler.assume_constant_result does, without importing torch._dynamo (1.7 s of
# every start-up) at import; tests/test_package_layout.py checks it matches torch's.
resolve_name._dynamo_marked_constant = True  # type: ignore[attr-defined]


def get(backend: str, device: torch.device) -> ModuleType:
    """The backend module that ``backend`` ("auto" or a name) resolves to on ``device``."""
    return module(resolve_name(backend, device))
