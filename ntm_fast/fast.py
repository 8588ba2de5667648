"""FastNTM: the drop-in for :class:`ReferenceNTM` that runs its memory ops on a fast backend."""

from __future__ import annotations

from types import ModuleType

import torch

from . import backends
from .model import ReferenceNTM


class FastNTM(ReferenceNTM):
    """:class:`ReferenceNTM` with the memory ops on the fused kernels.

    Same constructor arguments, parameters and ``state_dict`` as :class:`ReferenceNTM` (so
    ``load_state_dict`` works both ways), the same ``forward(x, state, lengths=, trace=)``, plus

    Args:
        backend: ``"auto"`` (default), ``"native"``, ``"triton"`` or ``"reference"``. ``auto``
            picks by device and by what is built (see :mod:`ntm_fast.backends`) and warns once
            when it has to fall back to the reference ops. After the first call,
            :attr:`backend` names the backend that ran.
    """

    def __init__(self, input_size: int, output_size: int, *, backend: str = "auto", **kwargs):
        super().__init__(input_size, output_size, **kwargs)
        if backend != "auto" and backend not in backends.BACKEND_NAMES:
            raise ValueError(
                f"backend: expected one of {(*backends.BACKEND_NAMES, 'auto')}, got {backend!r}"
            )
        self.requested_backend = backend
        self.backend: str | None = None

    def memory_ops(self, device: torch.device) -> ModuleType:
        self.backend = backends.resolve_name(self.requested_backend, device)
        return backends.module(self.backend)

    @classmethod
    def from_reference(cls, module: ReferenceNTM, *, backend: str = "auto") -> FastNTM:
        """A FastNTM with ``module``'s configuration, weights, dtype and device."""
        param = module.memory_bias
        fast = cls(**module.config, backend=backend).to(device=param.device, dtype=param.dtype)
        fast.load_state_dict(module.state_dict())
        return fast
