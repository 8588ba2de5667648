"""The initial-memory choice in the presets and the CLI, and runs that outlive a preset change."""

from __future__ import annotations

import json

import pytest
from tiny_run import CLI, tiny

from ntm_fast.train import TrainConfig, Trainer, presets
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_repeat_copy_presets_share_the_initial_memory_row(controller):
    # docs/results/repeat-copy.md: per-slot rows do not generalise beyond length 10
    assert presets.preset("repeat_copy", controller).model["memory_init"] == "shared"
    assert presets.preset("copy", controller).model["memory_init"] == "per_slot"
    assert "memory_init" not in presets.preset("repeat_copy", "baseline").model


def test_repeat_copy_defaults_per_controller():
    """results/repeat-copy.md: the LSTM NTM decayed over 100k steps on 64 of its 128 slots,
    its state reset in a quarter of the batches (results/repeat-copy-controller-reset.md);
    results/repeat-copy-feedforward.md: the feedforward one over 150k (it leaves its plateau
    later) on 64; both then finished on their 128 (10k steps from those weights, stages.py)."""
    lstm, ff = (presets.preset("repeat_copy", c).train for c in ("lstm", "feedforward"))
    assert (lstm["steps"], lstm["lr_schedule"], lstm["train_memory_slots"]) == (
        100_000, "cosine", 64)  # fmt: skip
    assert (ff["steps"], ff["lr_schedule"], ff["train_memory_slots"]) == (150_000, "cosine", 64)
    assert ff["finish"] == dict(steps=10_000, train_memory_slots=0, lr=1e-4,
                                lr_schedule="cosine", warmup_steps=500)  # fmt: skip
    assert lstm["finish"] == ff["finish"] and lstm["controller_reset"] == 0.25
    own = ("steps", "lr_schedule", "train_memory_slots", "controller_reset")
    assert {k: v for k, v in ff.items() if k not in own} == {
        k: v for k, v in lstm.items() if k not in own
    }


@pytest.mark.parametrize(
    ("controller", "overrides", "slots"),
    [
        ("lstm", {}, 64),
        ("lstm", {"memory_init": "per_slot"}, 0),  # a default, not applied where it cannot be
        ("lstm", {"memory_slots": 48}, 0),
        ("lstm", {"memory_slots": 100}, 64),
        ("feedforward", {}, 64),  # then a finishing stage on all 128 (test_stages.py)
        ("baseline", {}, 0),
    ],
)
def test_repeat_copy_trains_on_64_slots_where_the_default_applies(controller, overrides, slots):
    c = TrainConfig(task="repeat_copy", controller=controller, model_overrides=overrides)
    assert c.resolved().train_memory_slots == slots


def test_memory_init_flag_builds_the_shared_model(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "2", "--out", str(run), "--memory-init", "shared",
                 *CLI]) == 0  # fmt: skip
    data = ckpt.load_checkpoint(run)
    assert data["model_config"]["memory_init"] == "shared"
    assert data["model"]["memory_bias"].shape == (1, 6)
    assert "initial_state" in capsys.readouterr().err  # the parameter table


def test_resume_keeps_the_runs_model_when_the_preset_changed(tmp_path, monkeypatch):
    """A run started before a preset's default changed resumes with the model it has."""
    run = tmp_path / "run"
    Trainer(tiny(run, steps=2)).run()
    monkeypatch.setitem(presets._MEMORY_INIT, "copy", "shared")
    assert presets.preset("copy").model["memory_init"] == "shared"
    resumed = Trainer(tiny(run), resume=True, resume_overrides={"steps": 4})
    assert resumed.model.memory_init == "per_slot"
    assert resumed.run()["step"] == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--controller", "baseline", "--memory-init", "shared", "--memory-slots", "8"],
         "--memory-init, --memory-slots: not a setting of --controller baseline"),
        (["--hidden-size", "8"], "--hidden-size: not a setting of --controller lstm"),
    ],
)  # fmt: skip
def test_a_flag_the_controller_has_no_use_for_is_named(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "1", "--out", str(run), *argv,
                 "--no-plots", "--no-progress"]) == 1  # fmt: skip
    assert capsys.readouterr().err.strip() == f"ntm-fast: error: {message}"
    assert not run.exists()  # nothing left behind


def test_eval_with_more_memory_slots(tmp_path, capsys):
    """`ntm-fast eval --memory-slots N` runs a shared-row NTM with N slots, says so, and writes
    beside (not over) the run's eval.json."""
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "2", "--out", str(run), "--memory-init", "shared",
                 *CLI]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["eval", str(run), "--batches", "1", "--batch-size", "2",
                 "--memory-slots", "20"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "run with 20 memory slots" in out.splitlines()[0]
    result = json.loads((run / "eval-slots20.json").read_text())
    assert result["memory_slots"] == 20 and len(result["rows"]) == 5
    assert not (run / "eval.json").exists()
    assert main(["eval", str(run), "--batches", "1", "--batch-size", "2"]) == 0
    assert "memory_slots" not in json.loads((run / "eval.json").read_text())


@pytest.mark.parametrize(
    ("train_argv", "slots", "message"),
    [
        ([], "20", "memory_init='per_slot'"),
        (["--memory-init", "shared"], "4", "expected at least the 8 slots"),
    ],
)
def test_eval_memory_slots_that_cannot_be_used_are_named(tmp_path, capsys, train_argv, slots,
                                                         message):  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "1", "--out", str(run), *train_argv, *CLI]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--memory-slots", slots]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ntm-fast: error: --memory-slots {slots} for ") and message in err
    assert not list(run.glob("eval*.json"))


def test_eval_memory_slots_of_a_baseline_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "copy", "--controller", "baseline", "--hidden-size", "8", "--steps",
                 "1", "--out", str(run), "--task-arg", "max_length=3", "--no-plots",
                 "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["eval", str(run), "--memory-slots", "20"]) == 1
    assert "LSTM baseline, which has no memory" in capsys.readouterr().err
