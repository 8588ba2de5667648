"""The initial-memory choice in the presets and the CLI, and runs that outlive a preset change."""

from __future__ import annotations

import pytest
from tiny_run import CLI, tiny

from ntm_fast.train import Trainer, presets
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_repeat_copy_presets_share_the_initial_memory_row(controller):
    # docs/results/repeat-copy.md: per-slot rows do not generalise beyond length 10
    assert presets.preset("repeat_copy", controller).model["memory_init"] == "shared"
    assert presets.preset("copy", controller).model["memory_init"] == "per_slot"
    assert "memory_init" not in presets.preset("repeat_copy", "baseline").model


def test_repeat_copy_defaults_per_controller():
    """results/repeat-copy.md: the LSTM NTM at a constant rate for 40k steps, the
    feedforward one decayed over 75k (it is slower to converge)."""
    lstm, ff = (presets.preset("repeat_copy", c).train for c in ("lstm", "feedforward"))
    assert (lstm["steps"], lstm["lr_schedule"]) == (40_000, "constant")
    assert (ff["steps"], ff["lr_schedule"]) == (75_000, "cosine")
    assert {k: v for k, v in ff.items() if k not in ("steps", "lr_schedule")} == {
        k: v for k, v in lstm.items() if k not in ("steps", "lr_schedule")
    }


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
