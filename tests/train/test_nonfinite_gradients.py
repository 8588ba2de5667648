"""A NaN or inf gradient (float32 overflow through a long sequence) is dropped, counted and
reported; it never reaches the weights, and a run where every step overflows stops."""

from __future__ import annotations

import pytest
import torch
from tiny_run import tiny

from ntm_fast.train import NonFiniteError, Trainer
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.optim import SpikeClip, clip_gradients


def _params(bad: float | None) -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(3, 4))]
    for p in ps:
        p.grad = torch.randn_like(p) * 20
    if bad is not None:
        ps[1].grad[2, 1] = bad
    return ps


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("flat", [False, True])
def test_clip_gradients_zeroes_every_gradient_when_one_element_is_not_finite(bad, flat):
    ps = _params(bad)
    buf = None
    if flat:  # the trainer's layout: every gradient a view of one buffer
        buf = torch.cat([p.grad.reshape(-1) for p in ps])
        ps[0].grad, ps[1].grad = buf[:5], buf[5:].view(3, 4)
    finite = clip_gradients(ps, 10.0, 10.0, None, buf)
    assert finite.dtype == torch.bool and not bool(finite)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in ps)


def test_clip_gradients_on_a_finite_gradient_is_torchs_clipping():
    ps, expected = _params(None), _params(None)
    assert bool(clip_gradients(ps, 10.0, 7.0, None))
    torch.nn.utils.clip_grad_value_(expected, 10.0)
    torch.nn.utils.clip_grad_norm_(expected, 7.0)
    for p, q in zip(ps, expected, strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)


def test_a_dropped_gradient_leaves_the_spike_clips_running_mean_alone():
    clip = SpikeClip(3.0)
    clip_gradients(_params(None), 10.0, 0.0, clip)
    mean = clip.mean.clone()
    assert mean > 0
    clip_gradients(_params(float("nan")), 10.0, 0.0, clip)
    assert torch.equal(clip.mean, mean)


def _poison(t: Trainer, steps: set[int], value: float = float("nan"), every: bool = False):
    """Multiply the gradient of the trainer's first parameter (``every``: of each one) by
    ``value`` on the given steps (0-based optimiser steps), as an overflow would."""
    params = list(t.model.parameters())
    for param in params if every else params[:1]:
        param.register_hook(lambda g: g * value if t.step in steps else g)


def test_a_run_drops_the_overflowing_steps_and_goes_on(tmp_path, capsys):
    t = Trainer(tiny(tmp_path / "run", steps=8, log_every=2, checkpoint_every=4))
    _poison(t, {1, 5})
    summary = t.run()
    assert summary["reason"] == "steps" and summary["nonfinite_steps"] == 2
    assert all(p.isfinite().all() for p in t.model.parameters())
    err = capsys.readouterr().err
    assert "step 2: 1 of the last 2 steps had a NaN or inf gradient" in err
    assert "(2 in the run so far)" in err
    assert ckpt.load_checkpoint(tmp_path / "run")["nonfinite_steps"] == 2


def test_a_dropped_step_is_a_step_with_a_zero_gradient(tmp_path):
    """Same data, same weights: dropping step 3's NaN gradient gives exactly the weights of a
    run whose step-3 gradient was zero (Adam's momentum still moves them)."""
    dropped = Trainer(tiny(tmp_path / "nan", steps=6))
    _poison(dropped, {3})
    zeroed = Trainer(tiny(tmp_path / "zero", steps=6))
    _poison(zeroed, {3}, value=0.0, every=True)
    assert dropped.run()["nonfinite_steps"] == 1
    assert zeroed.run()["nonfinite_steps"] == 0
    for p, q in zip(dropped.model.parameters(), zeroed.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_the_count_survives_a_resume(tmp_path):
    run = tmp_path / "run"
    t = Trainer(tiny(run, steps=4, log_every=4))
    _poison(t, {0, 2})
    assert t.run()["nonfinite_steps"] == 2
    resumed = Trainer(tiny(run, log_every=4), resume=True, resume_overrides={"steps": 8})
    assert resumed.run()["nonfinite_steps"] == 2


def test_a_run_whose_every_step_overflows_stops(tmp_path):
    t = Trainer(tiny(tmp_path / "run", steps=8, log_every=2, checkpoint_every=100))
    _poison(t, set(range(8)), value=float("inf"))
    with pytest.raises(NonFiniteError, match="every one of the 2 steps since the last log"):
        t.run()
