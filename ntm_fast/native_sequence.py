"""The whole sequence in one native call each way: ``torch.ops.ntm_fast.sequence_fwd`` runs all
T steps of the NTM (controller, heads, addressing, read, write) in C++, and
``sequence_bwd`` the whole backpropagation through time, the way cuDNN runs an LSTM: on the
CPU (``csrc/cpu/sequence_*.cpp``) and, in a CUDA build, on CUDA (``csrc/cuda/sequence_*``: one
host call issues every kernel and cuBLAS product of the sequence on the current stream, without
host synchronisation, so it can be captured in a CUDA graph). :class:`NativeSequence` makes the
pair one autograd node.

It takes the same arguments as :class:`ntm_fast.sequence.NTMSequence` (the Python step loop
over the per-op kernels, still used by the Triton backend) plus ``lengths``:
steps at or past a sequence's length keep its state and give zero logits, as
:meth:`ntm_fast.ReferenceNTM.forward` does, so padded batches take the fast path too.

Parameters are ordered as in ``csrc/sequence_config.h`` (:func:`controller_weights`, then
the heads' and output layer's weight and bias). float32 and float64 run natively; half
types are computed in float32 and cast back (the memory ops compute half inputs in float32
anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import native_backend  # importing it loads ntm_fast._C, which registers the ops
from .autograd_checks import hand_written_backward
from .heads import HeadLayout

_NATIVE_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class NativeSequenceConfig:
    """What the op needs to know that is not a tensor."""

    layout: HeadLayout
    lstm: bool

    @property
    def shift_range(self) -> int:
        return (self.layout.shifts - 1) // 2

    @property
    def uniform(self) -> bool:
        return self.layout.shift_mode == "uniform"


_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}


def available(device: torch.device) -> bool:
    """Whether the native whole-sequence op runs on ``device``: the extension runs there
    (:func:`ntm_fast.native_backend.unavailable_reason`) and registers ``sequence_fwd`` and
    ``sequence_bwd`` for its dispatch key (CPU: every build; CUDA: a CUDA build)."""
    device = torch.device(device)
    key = _DISPATCH_KEYS.get(device.type)
    if key is None or native_backend.unavailable_reason(device) is not None:
        return False
    try:
        return all(
            torch._C._dispatch_has_kernel_for_dispatch_key(f"ntm_fast::{op}", key)
            for op in ("sequence_fwd", "sequence_bwd")
        )
    except RuntimeError:  # the op is not defined at all
        return False


class NativeSequence(torch.autograd.Function):
    """``apply(cfg, save, history, x, memory, reads, weightings, lengths, n_state, *state,
    *params)`` -> ``(logits, memory, reads, weightings, *state)``, then with ``history`` every
    step's weightings `(T, B, H, N)`, memory `(T, B, N, W)` and raw head parameters `(T, B,
    P)` (before their activations; 0 at a finished row's steps, which compute nothing, and
    their gradients dropped), differentiable; ``lengths`` is None or `(B,)` int64."""

    @staticmethod
    def forward(ctx, cfg: NativeSequenceConfig, save: bool, history: bool, x, memory, reads,
                weightings, lengths, n_state, *rest):  # fmt: skip
        state, params = list(rest[:n_state]), list(rest[n_state:])
        out = torch.ops.ntm_fast.sequence_fwd(
            x, memory, reads, weightings, state, params, lengths,
            cfg.layout.read_heads, cfg.shift_range, cfg.uniform, cfg.lstm, save or history,
        )  # fmt: skip
        n_out = 4 + n_state
        results, saved = out[:n_out], out[n_out:]
        ctx.cfg, ctx.n_state, ctx.n_params = cfg, n_state, len(params)
        ctx.set_materialize_grads(False)  # unused outputs (a history) pass None, not zeros
        ctx.save_for_backward(x, lengths, *state, *params, *(saved if save else ()))
        if history:  # saved: M_0 .. M_{T-1}, w_0 .. w_T, raw; copies, those stay the backward's
            memories = torch.cat([saved[0][1:], results[1].unsqueeze(0)])
            raw = saved[2].clone()
            if lengths is not None:
                ended = torch.arange(raw.shape[0], device=raw.device)[:, None] >= lengths
                raw.masked_fill_(ended[..., None], 0)
            results = (*results, saved[1][1:].clone(), memories, raw)
        return tuple(results)

    @staticmethod
    @hand_written_backward("FastNTM (native whole-sequence op)")
    def backward(ctx, *grads):
        cfg, n_state = ctx.cfg, ctx.n_state
        x, lengths, *rest = ctx.saved_tensors
        state, params = rest[:n_state], rest[n_state : n_state + ctx.n_params]
        saved = rest[n_state + ctx.n_params :]
        if not saved:
            raise RuntimeError(
                "NativeSequence.backward: the forward ran without saving for backward "
                "(no input required grad when it ran)"
            )
        g = torch.ops.ntm_fast.sequence_bwd(
            list(grads), x, list(state), list(params), list(saved), lengths,
            cfg.layout.read_heads, cfg.shift_range, cfg.uniform, cfg.lstm,
        )  # fmt: skip
        d_x, d_mem, d_reads, d_w, *d_rest = g
        return (None, None, None, d_x, d_mem, d_reads, d_w, None, None, *d_rest)


def run(cfg: NativeSequenceConfig, x: Tensor, memory: Tensor, reads: Tensor,
        weightings: Tensor, lengths: Tensor | None, state: list[Tensor],
        params: list[Tensor], history: bool = False) -> tuple[Tensor, ...]:  # fmt: skip
    """Run :class:`NativeSequence` (``history``: also every step's weightings, memory and raw
    head parameters, last); half types are computed in float32 and cast back."""
    dtype = x.dtype
    if dtype not in _NATIVE_DTYPES:
        up = [t.float() for t in (x, memory, reads, weightings, *state, *params)]
        x, memory, reads, weightings = up[:4]
        state, params = up[4 : 4 + len(state)], up[4 + len(state) :]
    tensors = (x, memory, reads, weightings, *state, *params)
    save = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    out = NativeSequence.apply(
        cfg, save, history, x, memory, reads, weightings, lengths, len(state), *state, *params
    )
    return tuple(t.to(dtype) for t in out) if dtype not in _NATIVE_DTYPES else out
