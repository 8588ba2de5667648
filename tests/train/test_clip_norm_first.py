"""--clip-norm-first: the global norm clipped before the element-wise clip, so an exploding
gradient keeps its direction; torch's clips in that order, the same bits on the trainer's
flat buffer, and a setting like the other clips (checked, described, stored, resumable)."""

from __future__ import annotations

import pytest
import torch
from tiny_run import CLI, tiny

from ntm_fast.train import Trainer, UserError
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.config import APPLIED, config_from_dict
from ntm_fast.train.optim import SpikeClip, clip_gradients
from ntm_fast.train.schedule import describe_schedule


def exploded(seed: int = 0) -> list[torch.nn.Parameter]:
    """Gradients as in an exploding step: a few elements ~1e6, the rest ~1."""
    g = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.zeros(40)), torch.nn.Parameter(torch.zeros(6, 5))]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g)
    ps[0].grad[:3] *= 1e6
    return ps


def flat_view(ps: list[torch.nn.Parameter]) -> torch.Tensor:
    buf = torch.cat([p.grad.reshape(-1) for p in ps])
    ps[0].grad, ps[1].grad = buf[:40], buf[40:].view(6, 5)
    return buf


def test_it_is_torchs_norm_clip_then_the_element_clip_then_the_norm_clip():
    ps, expected = exploded(), exploded()
    assert bool(clip_gradients(ps, 10.0, 7.0, None, norm_first=True))
    torch.nn.utils.clip_grad_norm_(expected, 7.0)
    torch.nn.utils.clip_grad_value_(expected, 10.0)
    torch.nn.utils.clip_grad_norm_(expected, 7.0)
    for p, q in zip(ps, expected, strict=True):  # the first factor is rounded from float64
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=0)


def test_an_exploding_gradient_keeps_its_direction_only_with_it():
    raw = torch.cat([p.grad.reshape(-1) for p in exploded()])
    for first, parallel in ((True, True), (False, False)):
        ps = exploded()
        clip_gradients(ps, 10.0, 10.0, None, norm_first=first)
        got = torch.cat([p.grad.reshape(-1) for p in ps])
        cos = float(got @ raw / (got.norm() * raw.norm()))
        # element clip first: 3 elements at ±10 and 67 at ~1 point elsewhere (cos ~0.7)
        assert (cos > 1 - 1e-6) == parallel and got.norm() == pytest.approx(10.0, rel=1e-5)


def test_the_flat_buffer_gives_the_same_bits():
    separate, together = exploded(), exploded()
    buf = flat_view(together)
    spikes = SpikeClip(1.5), SpikeClip(1.5)
    for step in range(3):  # the running-mean clip sees the pre-clipped norms in both layouts
        if step:
            for p, q, r in zip(separate, together, exploded(step), strict=True):
                p.grad.copy_(r.grad)
                q.grad.copy_(r.grad)
        clip_gradients(separate, 3.0, 5.0, spikes[0], norm_first=True)
        clip_gradients(list(together), 3.0, 5.0, spikes[1], buf, norm_first=True)
        for p, q in zip(separate, together, strict=True):
            assert torch.equal(p.grad, q.grad)
        assert torch.equal(spikes[0].mean, spikes[1].mean)


def test_a_non_finite_gradient_is_still_dropped():
    ps = exploded()
    ps[1].grad[0, 0] = float("inf")
    assert not bool(clip_gradients(ps, 10.0, 10.0, None, norm_first=True))
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in ps)


def test_it_is_a_checked_described_stored_setting(tmp_path, capsys):
    with pytest.raises(UserError, match=r"clip_norm_first: .* needs --clip-norm > 0"):
        tiny(tmp_path / "a", clip_norm_first=True).resolved()  # tiny runs clip no norm
    on = tiny(tmp_path / "b", clip_norm=5.0, clip_norm_first=True).resolved()
    assert "clip |g| 5, |g| clipped before g_i" in describe_schedule(on)
    off = tiny(tmp_path / "c", clip_norm=5.0).resolved()
    assert off.clip_norm_first is False and "before g_i" not in describe_schedule(off)
    old = config_from_dict({"task": "copy", "controller": "lstm"}, "old.pt")
    assert old.clip_norm_first is False  # a checkpoint from before the field: torch's order
    assert "clip_norm_first" in APPLIED
    out = tmp_path / "run"
    flags = list(CLI)
    flags[flags.index("--clip-norm") + 1] = "0.5"
    assert main(["train", "copy", *flags, "--steps", "2", "--clip-norm-first",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert "|g| clipped before g_i" in printed.out + printed.err
    assert ckpt.load_checkpoint(out)["config"]["clip_norm_first"] is True
    assert main(["train", "copy", *flags, "--steps", "3", "--no-clip-norm-first", "--resume",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert "changed: --clip-norm-first False (was True)" in printed.out + printed.err
    assert ckpt.load_checkpoint(out)["config"]["clip_norm_first"] is False


def test_it_changes_the_updates_when_elements_pass_the_clip(tmp_path):
    # clip 0.05 per element, norm 0.5: the tiny run's gradients reach both, so the order matters
    runs = {}
    for first in (False, True):
        out = tmp_path / str(first)
        Trainer(tiny(out, steps=3, clip=0.05, clip_norm=0.5, clip_norm_first=first)).run()
        runs[first] = ckpt.load_checkpoint(out)["model"]
    assert any(not torch.equal(runs[False][k], runs[True][k]) for k in runs[False])
