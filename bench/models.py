"""Whole-model benchmark variants and the paper's configurations (one home for both)."""

from __future__ import annotations

import torch

from ntm_fast import FastNTM, ReferenceNTM

from .workloads import skip_reason

# name: (constructor kwargs, sequence length T). T is the longest training episode: copy
# 20 inputs + delimiter + 20 outputs; associative recall 6 items of 3 steps with delimiters,
# the query and its answer; priority sort 20 inputs + delimiter + 16 outputs.
PAPER = {
    "copy": (dict(input_size=9, output_size=8, controller_size=100), 41),
    "associative": (dict(input_size=8, output_size=6, controller_size=100), 32),
    # the copy configuration with a large memory (N = 1024 slots): memory-op-bound steps
    "copy_n1024": (dict(input_size=9, output_size=8, controller_size=100, memory_slots=1024), 41),
    "priority_sort": (
        dict(
            input_size=10,
            output_size=8,
            controller_size=100,
            controller_layers=2,
            read_heads=5,
            write_heads=5,
        ),
        37,
    ),
}
VARIANTS = ("reference", "reference-compiled", "fast-reference", "fast-native", "fast-triton")


def variant_skip_reason(variant: str, device: torch.device) -> str | None:
    if variant.startswith("fast-"):
        return skip_reason(variant.removeprefix("fast-"), device)
    return skip_reason("reference", device)


def build(variant: str, kwargs: dict, device: torch.device) -> torch.nn.Module:
    """The model for ``variant``; all variants share the same weights for the same seed."""
    torch.manual_seed(0)
    ref = ReferenceNTM(**kwargs)
    if variant == "reference":
        model = ref
    elif variant == "reference-compiled":
        model = ref
        model.step = torch.compile(model.step, dynamic=False)
    else:
        model = FastNTM.from_reference(ref, backend=variant.removeprefix("fast-"))
    return model.to(device)
