"""Whole-model speed: a training step (forward + backward + optimiser step) and an inference
forward, ReferenceNTM (eager and compiled) against FastNTM on each backend."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from .models import PAPER, VARIANTS, build, variant_skip_reason
from .workloads import sync

CPU_BATCHES = {
    "copy": (1, 32, 256),
    "copy_n1024": (16,),
    "associative": (16,),
    "priority_sort": (16,),
}
GPU_BATCHES = {
    "copy": (1, 16, 256, 1024),
    "copy_n1024": (16, 256),
    "associative": (16, 256),
    "priority_sort": (16, 256),
}
SEQ_LENGTHS = (20, 100, 1000)  # copy configuration, batch 16


def _cases():
    for task, batches in GPU_BATCHES.items():
        for B in sorted(set(batches) | set(CPU_BATCHES[task])):
            yield task, B, PAPER[task][1]
    for T in SEQ_LENGTHS:
        yield "copy", 16, T


@pytest.mark.parametrize(("task", "B", "T"), list(dict.fromkeys(_cases())),
                         ids=lambda v: str(v))  # fmt: skip
@pytest.mark.parametrize("mode", ["train", "infer"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_model(benchmark, variant, mode, task, B, T, device):
    reason = variant_skip_reason(variant, device)
    if reason:
        pytest.skip(reason)
    in_seq_sweep = task == "copy" and B == 16
    if device.type == "cpu" and B not in CPU_BATCHES[task] and not in_seq_sweep:
        pytest.skip(f"batch {B} of {task} is a GPU-sized case")
    if variant == "reference-compiled" and (T > 100 or (mode == "infer" and device.type == "cpu")):
        pytest.skip("compiled reference: training at T <= 100 only (compile time)")
    kwargs, _ = PAPER[task]
    model = build(variant, kwargs, device)
    gen = torch.Generator().manual_seed(1)
    sets = [
        (torch.rand(T, B, kwargs["input_size"], generator=gen).round().to(device),
         torch.rand(T, B, kwargs["output_size"], generator=gen).round().to(device))
        for _ in range(2)
    ]  # fmt: skip
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, momentum=0.9, centered=True)

    def train(x, y):
        logits, _ = model(x)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)

    def infer(x, y):
        with torch.no_grad():
            model(x)
        sync(device)

    run = train if mode == "train" else infer
    for x, y in sets if benchmark.disabled else sets * 2:  # warm-up (compile, allocator)
        run(x, y)
    cycle = itertools.cycle(sets)
    benchmark.group = f"model {task} {mode} {device.type} B{B} T{T}"
    benchmark.extra_info.update(
        task=task, mode=mode, variant=variant, device=device.type, B=B, T=T,
        backend=getattr(model, "backend", "reference"),
    )  # fmt: skip
    benchmark.pedantic(lambda: run(*next(cycle)), rounds=5 if T >= 1000 else 15, iterations=1)
