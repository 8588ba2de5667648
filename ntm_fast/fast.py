"""FastNTM: the drop-in for :class:`ReferenceNTM` that runs its memory ops on a fast backend."""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from . import backends, native_sequence, resources, validation
from .heads import HeadParams
from .model import NTMHistory, NTMState, NTMTrace, ReferenceNTM
from .native_sequence import NativeSequenceConfig
from .sequence import NTMSequence, SequenceConfig, controller_weights
from .trace import zero_ended


class FastNTM(ReferenceNTM):
    """:class:`ReferenceNTM` with the memory ops on the fused kernels.

    Same constructor arguments, parameters and ``state_dict`` as :class:`ReferenceNTM` (so
    ``load_state_dict`` works both ways), the same ``forward(x, state, lengths=, trace=)``, plus

    Args:
        backend: ``"auto"`` (default), ``"native"``, ``"triton"`` or ``"reference"``. ``auto``
            picks by device and by what is built (see :mod:`ntm_fast.backends`) and warns once
            when it has to fall back to the reference ops. After the first call,
            :attr:`backend` names the backend that ran.
        fused_sequence: run whole sequences as one autograd node per call with
            hand-written backpropagation through time when the backend is native or triton.
            With the native backend (on the CPU, and on CUDA in a CUDA build) the whole loop,
            forward and backward, is one native call each way
            (:mod:`ntm_fast.native_sequence`), ``lengths`` included;
            otherwise :class:`ntm_fast.sequence.NTMSequence` loops over the fused kernels
            from Python. Calls with ``trace=True``, autocast, under ``torch.compile``, or with
            ``lengths`` where the native op does not run take the per-step path, which uses
            the same fused kernels through their autograd ops.
        checkpoint_steps: activation recomputation for long sequences: the fused path runs
            in chunks of this many steps, keeps only each chunk's input state for backward
            and recomputes the chunk during backward (same gradients, ~1/T_chunk of the
            memory; see :meth:`saved_bytes_per_step`). ``None`` (default) keeps everything.
        cuda_graph: opt-in, CUDA only. Training calls (gradients enabled) that start from
            the initial state (``state=None``) without ``lengths``, ``trace`` or
            ``checkpoint_steps`` capture the whole sequence's forward and backward once per
            input shape and dtype with :func:`torch.cuda.make_graphed_callables`, then replay
            them: one graph launch each way instead of thousands of kernel launches.
            Parameters must be updated in place (every ``torch.optim`` optimiser does).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        backend: str = "auto",
        fused_sequence: bool = True,
        checkpoint_steps: int | None = None,
        cuda_graph: bool = False,
        **kwargs,
    ):
        super().__init__(input_size, output_size, **kwargs)
        if checkpoint_steps is not None and (
            isinstance(checkpoint_steps, bool)
            or not isinstance(checkpoint_steps, int)
            or checkpoint_steps < 1
        ):
            raise ValueError(
                f"checkpoint_steps: expected None or an int >= 1, got {checkpoint_steps!r}"
            )
        self.fused_sequence = fused_sequence
        self.checkpoint_steps = checkpoint_steps
        self.cuda_graph = cuda_graph
        self._graphs: dict[tuple, nn.Module] = {}  # per input shape/dtype: a graphed runner
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
        history: bool = False,
    ) -> tuple[Tensor, NTMState] | tuple[Tensor, NTMState, NTMTrace | NTMHistory]:
        """See :meth:`ReferenceNTM.forward`. ``history`` takes the native whole-sequence op
        where it runs, else the per-step loop over this backend's kernels."""
        # Validate first; autocast_enabled is False on device types without autocast (meta).
        xt = self._check_input(x) if isinstance(x, Tensor) else None
        generic = (
            xt is None
            or not self.fused_sequence
            or trace
            or torch.compiler.is_compiling()
            or validation.autocast_enabled(xt.device)
        )
        per_step = {"lengths": lengths, "trace": trace, "history": history}
        if generic:
            return super().forward(x, state, **per_step)
        T, B = xt.shape[0], xt.shape[1]
        self.memory_ops(xt.device)
        kernels = backends.kernel_ops(self.backend)
        whole = self.backend == "native" and native_sequence.available(xt.device)
        if kernels is None or T == 0 or ((lengths is not None or history) and not whole):
            return super().forward(x, state, **per_step)
        active = None  # (T, B): the steps before each sequence's length
        if lengths is not None:
            active = self._check_lengths(lengths, T, B, xt.device)
            lengths = lengths.to(torch.int64)
        state_given = state
        state = self.initial_state(B) if state is None else self._check_state(state, B, xt)
        cfg = self._sequence_config(kernels, whole)
        flat = [state.memory, state.read_vectors, state.weightings, *state.controller]
        K = self.checkpoint_steps
        graphed = self.cuda_graph and xt.is_cuda and torch.is_grad_enabled() and K is None
        pieces: list[list[Tensor]] = []  # with history: each call's weightings, memory, raw
        if graphed and state_given is None and not history:
            logits, *flat = self._graphed(cfg, xt)(xt)
        elif K is None or T <= K or not torch.is_grad_enabled():
            logits, *flat = self._apply_sequence(cfg, xt, lengths, *flat, history=history)
        else:
            chunks = []
            for start in range(0, T, K):
                chunk_len = None if lengths is None else (lengths - start).clamp(0, K)
                out, *flat = checkpoint(
                    self._apply_sequence, cfg, xt[start : start + K], chunk_len, *flat,
                    history=history, use_reentrant=False,
                )  # fmt: skip
                chunks.append(out)
                if history:
                    pieces.append(_pop_history(flat))
            logits = torch.cat(chunks)
        if history and not pieces:
            pieces.append(_pop_history(flat))
        memory, reads, w_last, *ctrl = flat
        if self.batch_first:
            logits = logits.transpose(0, 1)
        state = NTMState(memory, reads, w_last, tuple(ctrl))
        if not history:
            return logits, state
        w, mem, raw = (p[0] if len(p) == 1 else torch.cat(p) for p in zip(*pieces, strict=True))
        heads = self.layout.activate(raw.flatten(0, 1))
        heads = HeadParams(*(t.unflatten(0, (T, B)) for t in heads))
        if active is not None:
            heads = zero_ended(heads, active)
        h = NTMHistory(w, mem, heads)
        return logits, state, h.batch_first() if self.batch_first else h

    def _graphed(self, cfg: SequenceConfig, x: Tensor) -> nn.Module:
        key = (tuple(x.shape), x.dtype, x.requires_grad, self.backend, self.training)
        runner = self._graphs.get(key)
        if runner is None:
            sample = x.detach().clone().requires_grad_(x.requires_grad)
            runner = torch.cuda.make_graphed_callables(_FromInitialState(self, cfg), (sample,))
            self._graphs[key] = runner
        return runner

    def _sequence_config(
        self, kernels: object, whole: bool
    ) -> SequenceConfig | NativeSequenceConfig:
        """The whole-sequence op's configuration: the native one-call loop (``whole``) or the
        Python loop over ``kernels``."""
        lstm = self.controller_kind == "lstm"
        if whole:
            return NativeSequenceConfig(layout=self.layout, lstm=lstm)
        return SequenceConfig(
            ops=kernels,
            layout=self.layout,
            lstm=lstm,
            layers=self.controller_layers,
            input_size=self.input_size,
        )

    def _apply_sequence(
        self,
        cfg: SequenceConfig | NativeSequenceConfig,
        x: Tensor,
        lengths: Tensor | None,
        *state: Tensor,
        history: bool = False,
    ) -> tuple[Tensor, ...]:
        heads, output = self.heads, self.output
        params = [*controller_weights(self), heads.weight, heads.bias, output.weight, output.bias]
        if isinstance(cfg, NativeSequenceConfig):
            memory, reads, w, *ctrl = state
            return native_sequence.run(cfg, x, memory, reads, w, lengths, ctrl, params, history)
        assert lengths is None and not history, "they take the native op or the per-step path"
        return NTMSequence.apply(cfg, x, *state[:3], len(state) - 3, *state[3:], *params)

    def saved_bytes_per_step(self, batch_size: int, dtype: torch.dtype | None = None) -> int:
        """Bytes the fused path keeps for backward per time step (without checkpointing):
        ``batch_size`` × :func:`ntm_fast.resources.saved_elements_per_step` elements (the
        memory before the write dominates; the heads' activations count only on the Python
        loop, the native op recomputes them, and on the CPU it keeps content addressing's
        dots and norms instead). With ``checkpoint_steps=K`` only each chunk's start state is
        kept, and one chunk (K steps) is live at a time during backward."""
        device = self.memory_bias.device
        whole = backends.resolve_name(
            self.requested_backend, device
        ) == "native" and native_sequence.available(device)
        per_row = resources.saved_elements_per_step(
            self, head_activations=not whole, content_keep=whole and device.type == "cpu"
        )
        element = torch.finfo(dtype or self.memory_bias.dtype).bits // 8
        return batch_size * per_row * element

    @classmethod
    def from_reference(cls, module: ReferenceNTM, *, backend: str = "auto") -> FastNTM:
        """A FastNTM with ``module``'s configuration, weights, dtype and device."""
        param = module.memory_bias
        fast = cls(**module.config, backend=backend).to(device=param.device, dtype=param.dtype)
        fast.load_state_dict(module.state_dict())
        return fast


class _FromInitialState(nn.Module):
    """The fused sequence from the learned initial state, as a module for graph capture."""

    def __init__(self, model: FastNTM, cfg: SequenceConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        s = self.model.initial_state(x.shape[1])
        flat = [s.memory, s.read_vectors, s.weightings, *s.controller]
        return self.model._apply_sequence(self.cfg, x, None, *flat)


def _pop_history(flat: list[Tensor]) -> list[Tensor]:
    """Take the history the native op returns last (weightings, memory, raw head parameters)
    off ``flat``, leaving the state."""
    history = flat[-3:]
    del flat[-3:]
    return history
