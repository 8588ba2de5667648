"""``--task-arg length_power=P`` (copy and repeat copy, training only): sequence lengths drawn
with P(L) proportional to L**P within the task's range, so training sees more long sequences
(docs/results/length-weighting.md). What it draws, that P = 0 is the paper's stream, that
evaluation drops it, and that a resumed run continues its stream exactly."""

from __future__ import annotations

import pytest
import torch
from tiny_run import resumed_and_straight, same_weights

from ntm_fast.train.evaluate import generalisation_settings
from ntm_fast.train.tasks import CopyTask, RepeatCopyTask, split_training_only
from ntm_fast.train.tasks.base import MAX_LENGTH_POWER

TASKS = [CopyTask, RepeatCopyTask]


def data_lengths(task, n: int) -> torch.Tensor:
    """The data lengths of n fresh sequences (the delimiter's step)."""
    batch = task.sample(n)
    return batch.inputs[..., task.bits].float().argmax(0)


@pytest.mark.parametrize("cls", TASKS)
def test_power_zero_is_the_papers_stream_bit_for_bit(cls):
    plain, explicit = cls(5), cls(5, length_power=0)
    for _ in range(3):
        assert all(
            torch.equal(a, b) for a, b in zip(plain.sample(8), explicit.sample(8), strict=True)
        )
    assert explicit.config() == plain.config()  # old checkpoints' task_config unchanged


@pytest.mark.parametrize("cls", TASKS)
@pytest.mark.parametrize("power", [1, 2])
def test_lengths_follow_the_power_law_within_the_range(cls, power):
    task = cls(3, min_length=2, max_length=9, length_power=power)
    counts = torch.bincount(data_lengths(task, 6000), minlength=10).double()
    assert counts[:2].sum() == 0 and counts[2:].sum() == 6000  # never outside [2, 9]
    span = torch.arange(2, 10, dtype=torch.float64)
    expected = 6000 * span**power / (span**power).sum()
    chi2 = float(((counts[2:] - expected) ** 2 / expected).sum())
    assert chi2 < 30  # 7 degrees of freedom: P(chi2 > 30) ~ 1e-4
    uniform = 6000 / 8  # and far from the uniform draw it replaces (chi2 there is ~10^3)
    assert float(((counts[2:] - uniform) ** 2 / uniform).sum()) > 100


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1", MAX_LENGTH_POWER + 1, 1000])
def test_a_bad_power_is_named_when_the_task_is_built(bad):
    # 1000 would make L**P infinite and fail only inside the first sample's draw
    for cls in TASKS:
        with pytest.raises(ValueError, match=r"length_power: expected an int in 0\.\.16"):
            cls(0, length_power=bad)


def test_the_largest_power_still_draws_a_valid_distribution():
    task = CopyTask(0, max_length=1000, length_power=MAX_LENGTH_POWER)
    lengths = data_lengths(task, 64)
    assert 1 <= int(lengths.min()) and int(lengths.max()) <= 1000


@pytest.mark.parametrize("cls", TASKS)
def test_evaluation_drops_it(cls):
    config = {"name": cls.name, **cls(0, length_power=1).config()}
    kept, dropped = split_training_only(config)
    assert dropped == {"length_power": 1} and "length_power" not in kept
    for _, setting in generalisation_settings(config):
        assert "length_power" not in setting


def test_resume_continues_the_weighted_stream_exactly(tmp_path):
    """The weighted draw comes from the task's generator, so a resumed run is bit-identical
    to an uninterrupted one."""

    def keeps_the_power(resumed):
        assert resumed.task.length_power == 2

    run, straight = resumed_and_straight(
        tmp_path, {"max_length": 5, "length_power": 2}, keeps_the_power
    )
    assert run["task_config"]["length_power"] == 2
    assert same_weights(run, straight)
