"""FastNTM: the drop-in for :class:`ReferenceNTM` that runs its memory ops on a fast backend."""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from . import backends
from .model import NTMState, NTMTrace, ReferenceNTM
from .sequence import NTMSequence, SequenceConfig, controller_weights


class FastNTM(ReferenceNTM):
    """:class:`ReferenceNTM` with the memory ops on the fused kernels.

    Same constructor arguments, parameters and ``state_dict`` as :class:`ReferenceNTM` (so
    ``load_state_dict`` works both ways), the same ``forward(x, state, lengths=, trace=)``, plus

    Args:
        backend: ``"auto"`` (default), ``"native"``, ``"triton"`` or ``"reference"``. ``auto``
            picks by device and by what is built (see :mod:`ntm_fast.backends`) and warns once
            when it has to fall back to the reference ops. After the first call,
            :attr:`backend` names the backend that ran.
        fused_sequence: run whole sequences through :class:`ntm_fast.sequence.NTMSequence`
            (one autograd node per call, hand-written backpropagation through time) when the
            backend is native or triton. Calls with ``lengths``, ``trace=True``, autocast or
            under ``torch.compile`` take the per-step path, which uses the same fused kernels
            through their autograd ops.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        backend: str = "auto",
        fused_sequence: bool = True,
        **kwargs,
    ):
        super().__init__(input_size, output_size, **kwargs)
        self.fused_sequence = fused_sequence
        if backend != "auto" and backend not in backends.BACKEND_NAMES:
            raise ValueError(
                f"backend: expected one of {(*backends.BACKEND_NAMES, 'auto')}, got {backend!r}"
            )
        self.requested_backend = backend
        self.backend: str | None = None

    def memory_ops(self, device: torch.device) -> ModuleType:
        self.backend = backends.resolve_name(self.requested_backend, device)
        return backends.module(self.backend)

    def forward(
        self,
        x: Tensor,
        state: NTMState | None = None,
        *,
        lengths: Tensor | None = None,
        trace: bool = False,
    ) -> tuple[Tensor, NTMState] | tuple[Tensor, NTMState, NTMTrace]:
        """See :meth:`ReferenceNTM.forward`."""
        if isinstance(x, Tensor):  # first: is_autocast_enabled below rejects e.g. meta devices
            self._check_input(x)
        generic = (
            not self.fused_sequence
            or lengths is not None
            or trace
            or torch.compiler.is_compiling()
            or not isinstance(x, Tensor)
            or torch.is_autocast_enabled(x.device.type)
        )
        if generic:
            return super().forward(x, state, lengths=lengths, trace=trace)
        xt = self._check_input(x)
        T, B = xt.shape[0], xt.shape[1]
        self.memory_ops(xt.device)
        kernels = backends.kernel_ops(self.backend)
        if kernels is None or T == 0:
            return super().forward(x, state, lengths=lengths, trace=trace)
        state = self.initial_state(B) if state is None else self._check_state(state, B, xt)
        cfg = SequenceConfig(
            ops=kernels,
            layout=self.layout,
            lstm=self.controller_kind == "lstm",
            layers=self.controller_layers,
            input_size=self.input_size,
        )
        heads, output = self.heads, self.output
        params = [*controller_weights(self), heads.weight, heads.bias, output.weight, output.bias]
        logits, memory, reads, weightings, *ctrl = NTMSequence.apply(
            cfg, xt, state.memory, state.read_vectors, state.weightings,
            len(state.controller), *state.controller, *params,
        )  # fmt: skip
        if self.batch_first:
            logits = logits.transpose(0, 1)
        return logits, NTMState(memory, reads, weightings, tuple(ctrl))

    @classmethod
    def from_reference(cls, module: ReferenceNTM, *, backend: str = "auto") -> FastNTM:
        """A FastNTM with ``module``'s configuration, weights, dtype and device."""
        param = module.memory_bias
        fast = cls(**module.config, backend=backend).to(device=param.device, dtype=param.dtype)
        fast.load_state_dict(module.state_dict())
        return fast
