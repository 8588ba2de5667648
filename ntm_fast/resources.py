"""Memory estimate for a training step, and a check that fails clearly *before* training.

A configuration that cannot fit should not die halfway through the first step with an
allocator error: :func:`check_training_fits` compares :func:`estimate_training_bytes` with the
device's available memory and raises :class:`InsufficientMemoryError` naming both numbers and
what to reduce. Nothing is allocated: the estimate works from the configuration alone.

This module is the one home of the training-memory formula (:func:`saved_elements_per_step`,
which :meth:`ntm_fast.FastNTM.saved_bytes_per_step` uses too). Per time step and sequence, the
backward keeps what :mod:`ntm_fast.sequence` saves (the per-step eager path keeps at least as
much, in ~60 autograd nodes per step), in elements (times the element size of the dtype):

* the input ``F`` and the memory before the step, ``N·W`` - the dominant term;
* the weightings, ``H·N`` (H = read_heads + write_heads);
* the heads' raw outputs ``P`` (:attr:`ntm_fast.heads.HeadLayout.total`) and, on the Python
  per-step loop only, their activations ``A`` (the native whole-sequence op recomputes them;
  on the CPU it keeps content addressing's dots, norms and scales ``K = (H + 2)·N + 2H``);
* per controller layer: its input (``R·W`` or ``C``, plus ``C`` for the LSTM's h_prev), its
  activations (``4C`` LSTM, ``C`` feedforward) and, for the LSTM, the previous cell ``C``;
* the output layer's input ``C + R·W``.

A training step adds the logits ``O`` and, during backward, one gradient per saved step for
the heads' raw outputs (``P``) and each layer's pre-activations (``4C`` or ``C``), collected
for the weight-gradient matmuls. ``activations = B · T · per_step`` plus ``2·B·N·W`` for the
live memory and its gradient; ``parameters = n_params · (2 + optimizer_states)`` (weights,
gradients and the optimiser's buffers: 3 for Graves's RMSProp, 2 for Adam). The estimate is a
lower bound on the peak (the allocator's caching and framework workspaces come on top), so
the check also keeps a margin.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from .heads import HeadLayout

__all__ = [
    "InsufficientMemoryError",
    "available_bytes",
    "check_training_fits",
    "estimate_training_bytes",
    "saved_elements_per_step",
]

_DEFAULTS = dict(
    memory_slots=128,
    memory_width=20,
    read_heads=1,
    write_heads=1,
    controller="lstm",
    controller_size=100,
    controller_layers=1,
    shift_range=1,
    shift_mode="softmax",
)  # fmt: skip (ReferenceNTM's defaults)


class InsufficientMemoryError(MemoryError):
    """A training configuration needs more memory than the device has available."""


def _config(model_or_config: Any) -> dict[str, Any]:
    if isinstance(model_or_config, Mapping):
        cfg = dict(model_or_config)
    elif hasattr(model_or_config, "config"):
        cfg = dict(model_or_config.config)
    else:
        raise TypeError(
            "model_or_config: expected a ReferenceNTM/FastNTM or its config dict, got "
            f"{type(model_or_config).__name__}"
        )
    for key in ("input_size", "output_size"):
        if key not in cfg:
            raise ValueError(f"model_or_config: missing {key!r}")
    return {**_DEFAULTS, **cfg}


def saved_elements_per_step(
    model_or_config: Any, *, head_activations: bool = False, content_keep: bool = False
) -> int:
    """Elements per sequence that backward keeps for one time step (the formula above):
    ``F + N·W + H·N + P [+ A | + K] + Σ_layers(in_l + 6C | in_l + C) + C + R·W``; ``A``, the
    heads' activations, only with ``head_activations`` (the Python per-step loop); ``K =
    (H + 2)·N + 2H``, content addressing's dots, norms and scales, only with ``content_keep``
    (the CPU whole-sequence op keeps them rather than recompute them in backward)."""
    c = _config(model_or_config)
    N, W, R, C = c["memory_slots"], c["memory_width"], c["read_heads"], c["controller_size"]
    L = HeadLayout(R, c["write_heads"], W, c["shift_range"], c["shift_mode"])
    acts = L.heads * W + 3 * L.heads + L.heads * L.shifts + 2 * L.write_heads * W
    per_layer = 0
    for layer in range(c["controller_layers"]):
        in_l = R * W if layer == 0 else C
        per_layer += in_l + 6 * C if c["controller"] == "lstm" else in_l + C
    keep = (L.heads + 2) * N + 2 * L.heads if content_keep else 0
    return (c["input_size"] + N * W + L.heads * N + L.total + (acts if head_activations else 0)
            + keep + per_layer + C + R * W)  # fmt: skip


def estimate_training_bytes(
    model_or_config: Any,
    *,
    batch_size: int,
    steps: int,
    dtype: torch.dtype = torch.float32,
    optimizer_states: int = 3,
    history: bool = False,
) -> dict[str, int]:
    """Bytes one training step (forward and backward over ``steps`` time steps) needs.

    Args:
        model_or_config: a ReferenceNTM / FastNTM, or a dict of its constructor arguments
            (``module.config``) - a dict lets a too-large configuration be checked without
            building it.
        batch_size: B, sequences per batch.
        steps: T, the longest sequence of the batch (time steps per forward call).
        dtype: the parameters' and memory's dtype.
        optimizer_states: the optimiser's buffers per parameter (3 for Graves's RMSProp,
            2 for Adam, 0 for plain SGD).
        history: the forward returns ``history=True``'s weightings, memory and head
            parameters (the training penalties): they and their gradients, per step.

    Returns:
        ``{"activations", "memory_state", "parameters", "total", "per_step"}`` in bytes;
        ``per_step`` is the activation bytes per time step for the whole batch.
    """
    c = _config(model_or_config)
    N, W, R, Hw = c["memory_slots"], c["memory_width"], c["read_heads"], c["write_heads"]
    C, layers, F, n_out = (
        c["controller_size"],
        c["controller_layers"],
        c["input_size"],
        c["output_size"],
    )
    lstm = c["controller"] == "lstm"
    layout = HeadLayout(R, Hw, W, c["shift_range"], c["shift_mode"])
    P, H = layout.total, layout.heads
    elem = torch.finfo(dtype).bits // 8

    # saved tensors, plus the logits and backward's gradients of P and the pre-activations
    per_seq_step = saved_elements_per_step(c) + n_out + P + layers * (4 * C if lstm else C)
    if history:  # NTMHistory's (H, N) weightings, (N, W) memory and P head parameters, x 2
        per_seq_step += 2 * (H * N + N * W + P)
    params = 0
    for layer in range(layers):
        in_l = R * W if layer == 0 else C
        if lstm:
            params += 4 * C * ((F if layer == 0 else 0) + in_l + C) + 8 * C
        else:
            params += C * ((F if layer == 0 else 0) + in_l) + C
    params += C * P + P + (C + R * W) * n_out + n_out  # heads, output
    params += N * W + R * W + H * N + (2 * layers * C if lstm else 0)  # initial state

    B, T = int(batch_size), int(steps)
    per_step = B * per_seq_step * elem
    activations = T * per_step
    memory_state = 2 * B * N * W * elem
    parameters = params * (2 + optimizer_states) * elem
    total = activations + memory_state + parameters
    return dict(
        activations=activations,
        memory_state=memory_state,
        parameters=parameters,
        total=total,
        per_step=per_step,
    )


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory on ``device``: ``torch.cuda.mem_get_info`` on CUDA, MemAvailable from
    /proc/meminfo on a Linux CPU; None where it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024  # kB
        except OSError:
            return None
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_training_fits(
    model_or_config: Any,
    *,
    batch_size: int,
    steps: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    optimizer_states: int = 3,
    history: bool = False,
    headroom: float = 0.9,
    available: int | None = None,
) -> dict[str, int]:
    """Raise :class:`InsufficientMemoryError` when the estimated training step does not fit in
    ``headroom`` × the available memory of ``device``; else return the estimate.

    ``available`` overrides the measured free bytes (for tests). When the free memory cannot
    be measured the check passes. Set ``NTM_FAST_SKIP_MEMORY_CHECK=1`` to skip it.
    """
    est = estimate_training_bytes(
        model_or_config,
        batch_size=batch_size,
        steps=steps,
        dtype=dtype,
        optimizer_states=optimizer_states,
        history=history,
    )
    if os.environ.get("NTM_FAST_SKIP_MEMORY_CHECK") == "1":
        return est
    free = available_bytes(device) if available is None else available
    if free is None or est["total"] <= headroom * free:
        return est
    c = _config(model_or_config)
    budget = headroom * free - est["parameters"] - est["memory_state"]
    max_steps = max(0, int(budget // est["per_step"])) if est["per_step"] else 0
    raise InsufficientMemoryError(
        f"training needs about {_gib(est['total'])} on {torch.device(device)} but only "
        f"{_gib(free)} is available ({headroom:.0%} of it usable): activations "
        f"{_gib(est['activations'])} = batch {batch_size} x {steps} steps x "
        f"{_gib(est['per_step'] / max(1, batch_size))} per sequence-step (dominated by the "
        f"memory N x W = {c['memory_slots']} x {c['memory_width']}), parameters and optimiser "
        f"{_gib(est['parameters'])}. Reduce the batch size, the sequence length (at this batch "
        f"size at most ~{max_steps} steps fit), memory_slots or memory_width, or train in "
        f"shorter chunks (truncated BPTT / checkpointing). Set NTM_FAST_SKIP_MEMORY_CHECK=1 to "
        f"skip this check."
    )
