"""Copy's training-only zero-vector emphasis (``--task-arg zero_vector_percent=N``,
docs/results/copy-blanked-vectors.md): what it draws, that a run says it trains with it, that
evaluation drops it, and that resume continues its stream exactly."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_run import CLI, resumed_and_straight, same_weights, tiny

from ntm_fast.train import TrainConfig, Trainer, presets
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.evaluate import format_table, generalisation_settings
from ntm_fast.train.tasks import CopyTask, split_training_only, task_options


def zero_vectors(batch, bits: int = 8) -> tuple[int, int]:
    """(all-zero data vectors, data vectors) over a batch's sequences."""
    zeros = total = 0
    for j in range(batch.inputs.shape[1]):
        L = (int(batch.lengths[j]) - 1) // 2
        zeros += int((batch.inputs[:L, j, :bits].sum(-1) == 0).sum())
        total += L
    return zeros, total


def test_zero_percent_is_the_papers_stream_bit_for_bit():
    plain, explicit = CopyTask(5), CopyTask(5, zero_vector_percent=0)
    for _ in range(3):
        assert all(
            torch.equal(a, b) for a, b in zip(plain.sample(8), explicit.sample(8), strict=True)
        )
    assert explicit.config() == plain.config()  # old checkpoints' task_config unchanged


@pytest.mark.parametrize("percent", [5, 30])
def test_the_rate_of_all_zero_vectors(percent):
    # fair vectors are all-zero 1 in 256; blanked ones add percent/100 of the rest
    zeros, total = zero_vectors(CopyTask(1, zero_vector_percent=percent).sample(4000))
    expected = percent / 100 + (1 - percent / 100) / 256
    sd = (expected * (1 - expected) / total) ** 0.5
    assert abs(zeros / total - expected) < 5 * sd


def test_only_data_vectors_are_blanked_and_targets_follow():
    b = CopyTask(2, zero_vector_percent=100).sample(16)
    assert not b.inputs[..., :8].any() and not b.targets.any()  # everything blank, copied blank
    for j in range(16):  # the delimiter and the mask are the paper's
        L = (int(b.lengths[j]) - 1) // 2
        assert b.inputs[L, j, 8] == 1 and b.inputs[:, j, 8].sum() == 1
        assert b.mask[L + 1 : 2 * L + 1, j].all() and b.mask[:, j].sum() == L


@pytest.mark.parametrize("bad", [-1, 101, 2.5, True, "5"])
def test_a_bad_percentage_is_named(bad):
    with pytest.raises(ValueError, match="zero_vector_percent: expected an int percentage"):
        CopyTask(0, zero_vector_percent=bad)


def test_evaluation_drops_it_and_says_the_network_was_trained_with_it():
    config = {"name": "copy", **CopyTask(0, zero_vector_percent=5).config()}
    assert split_training_only(config)[1] == {"zero_vector_percent": 5}
    for _, setting in generalisation_settings(config):
        assert "zero_vector_percent" not in setting
    assert task_options(config) == {"zero_vector_percent": 5}
    result = {"task": "copy", "controller": "lstm", "sequences_trained": 10, "step": 5,
              "rows": [], "training_options": {"zero_vector_percent": 5}}  # fmt: skip
    assert "trained with zero_vector_percent=5" in format_table(result).splitlines()[0]


def test_the_copy_presets_blank_the_feedforward_throughout_the_lstm_at_the_start():
    # copy-blanked-vectors.md: blanking cures the feedforward NTM only while it lasts; the LSTM
    # one keeps the zero vector after a blanked start and generalises more often than with
    # blanking throughout
    ff = presets.preset("copy", "feedforward").train["task_args"]
    assert ff == {"zero_vector_percent": 10}
    lstm = presets.preset("copy", "lstm").train["task_args"]
    assert lstm == {"zero_vector_percent": 10, "zero_vector_until": 5000}
    assert TrainConfig(controller="feedforward").resolved().task_overrides == ff
    overridden = TrainConfig(controller="feedforward", task_overrides={"zero_vector_percent": 0})
    assert overridden.resolved().task_overrides == {"zero_vector_percent": 0}
    assert TrainConfig().resolved().task_overrides == lstm
    assert "task_args" not in presets.preset("copy", "baseline").train


def test_the_flag_trains_with_it_says_so_and_eval_uses_fair_bits(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "copy", "--steps", "2", "--out", str(run), *CLI]
    blanked = ["--task-arg", "zero_vector_percent=10", "--task-arg", "zero_vector_until=0"]
    assert main([*argv, *blanked]) == 0  # until=0: blanked to the end, not the default's 5000
    assert "task: max_length=3, zero_vector_percent=10\n" in capsys.readouterr().err
    assert ckpt.load_checkpoint(run)["task_config"]["zero_vector_percent"] == 10
    eval_json = tmp_path / "eval.json"
    assert main(["eval", str(run), "--batches", "1", "--batch-size", "2",
                 "--out", str(eval_json)]) == 0  # fmt: skip
    result = json.loads(eval_json.read_text())
    assert result["training_options"] == {"zero_vector_percent": 10}
    assert result["task_options"] == {"max_length": 3}  # the rows: the paper's data
    plain = tmp_path / "plain"  # the LSTM default: blanked for the first 5,000 sequences
    assert main(["train", "copy", "--steps", "2", "--out", str(plain), *CLI]) == 0
    assert split_training_only(ckpt.load_checkpoint(plain)["task_config"])[1] == {
        "zero_vector_percent": 10, "zero_vector_until": 5000}  # fmt: skip
    fair = tmp_path / "fair"
    assert main(["train", "copy", "--steps", "2", "--out", str(fair), *CLI,
                 "--task-arg", "zero_vector_percent=0"]) == 0  # fmt: skip
    assert "zero_vector_percent" not in ckpt.load_checkpoint(fair)["task_config"]


@pytest.mark.parametrize("first", [0, 16])
def test_resume_continues_the_blanked_stream_exactly(tmp_path, first):
    """The blanking draws come from the task's generator, so a resumed run is bit-identical
    to an uninterrupted one (and would not be if the draws came from elsewhere); with
    ``zero_vector_until`` the count goes on from the checkpoint (batch 4: the switch to fair
    bits at step 5 of 6, after the resume at step 3)."""
    blanked = {"max_length": 3, "zero_vector_percent": 30, "zero_vector_until": first}

    def keeps_blanking(resumed):
        assert resumed.task.zero_vector_percent == 30

    assert same_weights(*resumed_and_straight(tmp_path, blanked, keeps_blanking))


def test_a_run_started_before_the_default_resumes_with_its_own_stream(tmp_path, monkeypatch):
    """Started while its preset trained on fair bits alone, a run resumed after the preset
    took up blanking keeps drawing fair bits: the checkpoint's task_config is the authority."""
    key = ("copy", "lstm")
    run, straight = tmp_path / "run", tmp_path / "straight"
    monkeypatch.setitem(presets._CONTROLLER_DEFAULTS, key, {})  # the paper's fair bits
    Trainer(tiny(run, steps=3)).run()
    Trainer(tiny(straight, steps=6)).run()
    monkeypatch.setitem(
        presets._CONTROLLER_DEFAULTS, key, {"task_args": {"zero_vector_percent": 50}}
    )
    assert TrainConfig().resolved().task_overrides == {"zero_vector_percent": 50}
    resumed = Trainer(tiny(run), resume=True, resume_overrides={"steps": 6})
    assert resumed.task.zero_vector_percent == 0
    resumed.run()
    a, b = ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight)
    assert "zero_vector_percent" not in a["task_config"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # same stream


def test_blanking_only_within_a_window_of_sequences():
    """``zero_vector_from=A``, ``zero_vector_until=B``: the batches whose first sequence is
    numbered in [A, B) are blanked; the others are the paper's fair bits, with no blanking
    draws (so before A the stream is the paper's, bit for bit)."""
    task = CopyTask(3, zero_vector_percent=100, zero_vector_from=4, zero_vector_until=12)
    paper = CopyTask(3)
    assert all(torch.equal(a, b) for a, b in zip(task.sample(4), paper.sample(4), strict=True))
    window = [task.sample(4) for _ in range(2)]  # sequences 4-7 and 8-11: blanked
    assert all(not b.inputs[..., :8].any() for b in window)
    zeros, total = zero_vectors(task.sample(4000))
    sd = ((1 / 256) * (255 / 256) / total) ** 0.5
    assert abs(zeros / total - 1 / 256) < 5 * sd  # fair bits again
    config = {"name": "copy", **task.config()}
    assert split_training_only(config)[1] == {
        "zero_vector_percent": 100, "zero_vector_from": 4, "zero_vector_until": 12}  # fmt: skip
    assert CopyTask(3, **task.config()).config() == task.config()  # rebuilds from its config


def test_the_sequence_count_survives_state_dict():
    a = CopyTask(4, zero_vector_percent=50, zero_vector_until=6)
    a.sample(4)
    b = CopyTask(4, zero_vector_percent=50, zero_vector_until=6)
    b.load_state_dict(a.state_dict())
    assert b.sequences_drawn == 4
    for _ in range(3):  # the switch to fair bits happens at the same batch in both
        assert all(torch.equal(x, y) for x, y in zip(a.sample(4), b.sample(4), strict=True))
    old = {"generator": CopyTask(4).state_dict()["generator"]}  # a checkpoint from before
    b.load_state_dict(old)
    assert b.sequences_drawn == 0


@pytest.mark.parametrize("name", ["zero_vector_from", "zero_vector_until"])
@pytest.mark.parametrize("bad", [-1, 2.5, True, "5"])
def test_a_bad_sequence_count_is_named(name, bad):
    with pytest.raises(ValueError, match=f"{name}: expected an int >= 0"):
        CopyTask(0, **{name: bad})


def test_a_window_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match=r"zero_vector_until: expected 0 \(no end\) or more "
                                         r"than zero_vector_from \(10\), got 10"):  # fmt: skip
        CopyTask(0, zero_vector_from=10, zero_vector_until=10)


def test_a_rank_counts_the_whole_runs_sequences():
    """Under torchrun each rank draws its own batches; ``streams`` (the trainer sets it to the
    world size) makes the count the run's, so every rank switches at the same step."""
    rank = CopyTask(6, zero_vector_percent=100, zero_vector_until=8)
    rank.streams = 2
    blanked = [not rank.sample(2).inputs[..., :8].any() for _ in range(3)]
    assert blanked == [True, True, False] and rank.sequences_drawn == 12
