"""--clip-spike (ntm_fast.train.optim.SpikeClip): the global gradient norm clipped to a
multiple of its running mean, computed by hand; configuration, checkpoint and exact resume."""

import math

import pytest
import torch
from tiny_run import tiny

from ntm_fast.train import TrainConfig, Trainer, UserError
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.optim import SpikeClip


def _by_hand(norms, factor, decay=0.99):
    """(norm after clipping, running mean) per step, from the class docstring's rule."""
    mean, out = 0.0, []
    for n in norms:
        limit = mean * factor if mean > 0 else n
        kept = min(n, limit)
        mean = mean * decay + kept * (1 - decay) if mean > 0 else kept
        out.append((kept, mean))
    return out


def test_clips_to_a_multiple_of_the_running_mean():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.zeros(3, 4, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    clip = SpikeClip(3.0)
    norms = [1.0, 2.0, 0.5, 40.0, 1.0, 1e4, 2.5]
    for (kept, mean), n in zip(_by_hand(norms, 3.0), norms, strict=True):
        ga = torch.randn(3, 4, generator=g, dtype=torch.float64)
        gb = torch.randn(5, generator=g, dtype=torch.float64)
        scale = n / math.sqrt(float(ga.square().sum() + gb.square().sum()))
        a.grad, b.grad = ga * scale, gb * scale
        before = clip([a, b])
        assert float(before) == pytest.approx(n, rel=1e-12)
        after = math.sqrt(float(a.grad.square().sum() + b.grad.square().sum()))
        assert after == pytest.approx(kept, rel=1e-6)
        assert float(clip.mean) == pytest.approx(mean, rel=1e-6)
        # the direction is kept
        assert torch.allclose(a.grad / after, ga * scale / n, rtol=1e-9, atol=1e-12)


def test_parameters_without_gradients_are_skipped_and_zero_norm_is_safe():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.zeros(2)
    clip = SpikeClip(2.0)
    assert float(clip([a, b])) == 0.0
    assert torch.equal(a.grad, torch.zeros(2)) and b.grad is None


def test_factor_must_exceed_one():
    with pytest.raises(ValueError, match="factor"):
        SpikeClip(1.0)


@pytest.mark.parametrize("bad", [0.5, 1.0, -2.0])
def test_config_refuses_a_factor_at_or_below_one(tmp_path, bad):
    with pytest.raises(UserError, match="clip_spike"):
        TrainConfig(**{**tiny(tmp_path).__dict__, "clip_spike": bad}).resolved()


def test_resume_with_clip_spike_is_exact_and_the_mean_is_checkpointed(tmp_path):
    full = Trainer(tiny(tmp_path / "full", steps=8, clip_spike=2.0))
    full.run()
    part = Trainer(tiny(tmp_path / "run", steps=4, clip_spike=2.0))
    part.run()
    state = ckpt.load_checkpoint(tmp_path / "run")
    assert float(state["grad_norm_mean"]) == float(part.spike_clip.mean) > 0
    resumed = Trainer(tiny(tmp_path / "run", clip_spike=2.0), resume=True,
                      resume_overrides={"steps": 8})  # fmt: skip
    resumed.run()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_off_by_default_stores_none(tmp_path):
    off = Trainer(tiny(tmp_path / "off", steps=2))
    off.run()
    assert off.spike_clip is None and off.config.clip_spike == 0
    assert ckpt.load_checkpoint(tmp_path / "off")["grad_norm_mean"] is None


def test_a_mistyped_mean_in_a_checkpoint_is_refused(tmp_path):
    Trainer(tiny(tmp_path / "run", steps=2, clip_spike=2.0)).run()
    path = tmp_path / "run" / "checkpoint.pt"
    state = ckpt.load_checkpoint(path)
    state["grad_norm_mean"] = torch.tensor([1.0, 2.0])
    ckpt.save_checkpoint(path, state)
    with pytest.raises(ckpt.CheckpointError, match="grad_norm_mean"):
        ckpt.load_for_resume(path, "copy", "lstm")
