"""The README's main job (`ntm-fast train copy`): its training step as the trainer runs it
(fresh batch from the task, forward, cost, backward, clipping, optimiser step), on FastNTM's
whole-sequence op against the per-step path FastNTM ran before it (``fused_sequence=False``:
one native call per memory op and time step, Python BPTT). Three recipes: the copy preset's
default, the same without its write-gate penalty (what the penalty's history costs), and the
one the whole-sequence issue measured its baseline on (batch 32, Adam 2e-3, norm clip 5,
cosine). Sequences per second = batch size / median step time. CPU only: the
main job is the CPU command.
"""

from __future__ import annotations

import pytest
import torch

from ntm_fast.train import TrainConfig, Trainer

from .workloads import skip_reason

RECIPES = {
    "default": {},
    "no-gate-penalty": {"gate_penalty": 0.0},
    "batch32-adam": {
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 2e-3,
        "clip_norm": 5.0,
        "clip_spike": 0.0,
        "lr_schedule": "cosine",
    },
}


@pytest.mark.parametrize("path", ["fused", "per-step"])
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_main_job_step(benchmark, tmp_path, recipe, path):
    reason = skip_reason("native", torch.device("cpu"))
    if reason:
        pytest.skip(reason)
    config = TrainConfig(
        task="copy", steps=10**9, out=str(tmp_path / "run"), plots=False, progress=False,
        threads=torch.get_num_threads(), checkpoint_every=10**9, log_every=10**9,
        model_overrides={"fused_sequence": path == "fused"}, **RECIPES[recipe],
    )  # fmt: skip
    trainer = Trainer(config)
    try:
        for _ in range(2 if benchmark.disabled else 10):  # warm-up (allocator, saved pool)
            trainer.train_step()
        B = trainer.config.batch_size
        benchmark.group = f"main job: copy train step, {recipe} recipe (B{B}) cpu"
        benchmark.extra_info.update(variant=path, recipe=recipe, B=B, device="cpu")
        benchmark.pedantic(trainer.train_step, rounds=30, iterations=5 if B <= 2 else 1)
        if not benchmark.disabled:
            benchmark.extra_info["sequences_per_s"] = B / benchmark.stats.stats.median
    finally:
        trainer.close()
