"""What a run's floating-point results depend on besides its seed: the torch version, the CPU
instruction set torch's kernels dispatch to (``torch.backends.cpu.get_cpu_capability()``) and
the GPU model. A checkpoint records them; resuming under others is allowed, and said.

Why: on one machine a run is bit-reproducible, and ``--resume`` continues it exactly. Under
another instruction set the matrix products round differently (measured: repeat copy, LSTM,
seed 10: the first logged cost differs in its 8th digit under ``ATEN_CPU_CAPABILITY=avx2``
against AVX-512), and over 100k steps the run ends somewhere else: which seeds of a recipe
succeed can change (docs/training-continue.md)."""

from __future__ import annotations

import torch

#: the keys of :func:`arithmetic`, in the order they are described
KEYS = ("torch", "cpu", "gpu")


def arithmetic(device: torch.device) -> dict[str, str]:
    """The torch version, CPU capability and (on CUDA) the GPU model a run computes with."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return {"torch": str(torch.__version__), "cpu": torch.backends.cpu.get_cpu_capability(),
            "gpu": gpu}  # fmt: skip


def describe_change(saved: dict[str, str] | None, now: dict[str, str]) -> str | None:
    """A note when a checkpoint written under ``saved`` resumes under ``now``: the run goes on
    exactly from the checkpoint, but not bit for bit as an uninterrupted run would have; None
    when nothing differs or the checkpoint predates the record."""
    if saved is None:
        return None
    changed = [f"{k} {saved.get(k, '?')} -> {now[k]}" for k in KEYS if saved.get(k) != now[k]]
    if not changed:
        return None
    return (f"note: the checkpoint was written under other arithmetic ({', '.join(changed)}): "
            "the run continues from it, but its numbers will not match an uninterrupted "
            "run's bit for bit")  # fmt: skip
