"""Training on a memory with fewer slots than the model has (``--train-memory-slots``), and
evaluating with the model's own: docs/training-memory.md."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_run import CLI, log_rows, tiny

from ntm_fast.train import Trainer
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.config import TrainConfig, UserError, config_from_dict

SHARED = dict(memory_slots=8, memory_width=6, controller_size=16, memory_init="shared")


def _shared(out, **kw) -> TrainConfig:
    return tiny(out, model_overrides=dict(SHARED), **kw)


def test_training_on_fewer_slots_is_the_smaller_model_trained(tmp_path):
    """The same numbers as a model built with that many slots: only evaluation differs."""
    small = tiny(tmp_path / "small", model_overrides={**SHARED, "memory_slots": 5})
    Trainer(small).run()
    Trainer(_shared(tmp_path / "on5", train_memory_slots=5)).run()
    assert log_rows(tmp_path / "on5") == log_rows(tmp_path / "small")
    a, b = (ckpt.load_checkpoint(tmp_path / d) for d in ("small", "on5"))
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert b["model_config"]["memory_slots"] == 8  # the model, as the user asked for it
    assert b["config"]["train_memory_slots"] == 5


def test_the_checkpoint_loads_with_the_models_own_slots(tmp_path):
    run = tmp_path / "run"
    Trainer(_shared(run, train_memory_slots=5)).run()
    _, model = ckpt.load_model(run / "checkpoint.pt", backend="reference")
    logits = model.state_dict()["weighting_logits"]
    assert logits.shape[-1] == 8
    start = torch.softmax(logits, -1)
    assert torch.all(start[..., 5:] == 0)  # the slots it did not train on start unweighted
    _, as_trained = ckpt.load_model(run / "checkpoint.pt", "reference", memory_slots=5)
    assert as_trained.state_dict()["weighting_logits"].shape[-1] == 5
    with pytest.raises(UserError, match="expected at least the 5 slots"):
        ckpt.load_model(run / "checkpoint.pt", "reference", memory_slots=4)


def test_eval_runs_with_the_models_slots_and_says_what_it_trained_with(tmp_path, capsys):
    """`ntm-fast eval RUN` of a run trained on 5 of 8 slots evaluates with 8; with
    `--memory-slots 5` it scores exactly what a 5-slot model with the same weights scores."""
    tiny_flags = [*CLI, "--memory-init", "shared"]
    on5, small = tmp_path / "on5", tmp_path / "small"
    assert main(["train", "copy", "--steps", "3", "--out", str(on5), *tiny_flags,
                 "--train-memory-slots", "5"]) == 0  # fmt: skip
    assert "training on 5 of the model's 8 memory slots" in capsys.readouterr().err
    small_flags = [f if f != "8" else "5" for f in tiny_flags]  # --memory-slots 5
    assert main(["train", "copy", "--steps", "3", "--out", str(small), *small_flags]) == 0
    capsys.readouterr()
    ev = ["--batches", "1", "--batch-size", "3"]
    assert main(["eval", str(on5), *ev]) == 0
    assert (
        capsys.readouterr().out.splitlines()[0].endswith("run with 8 memory slots (trained with 5)")
    )
    result = json.loads((on5 / "eval.json").read_text())
    assert (result["memory_slots"], result["train_memory_slots"]) == (8, 5)
    assert main(["eval", str(on5), *ev, "--memory-slots", "5"]) == 0
    assert main(["eval", str(small), *ev]) == 0
    rows5 = json.loads((on5 / "eval-slots5.json").read_text())["rows"]
    assert rows5 == json.loads((small / "eval.json").read_text())["rows"]


def test_resume_continues_on_the_training_memory(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    Trainer(_shared(whole, train_memory_slots=5, steps=8, checkpoint_every=4)).run()
    Trainer(_shared(split, train_memory_slots=5, steps=4, checkpoint_every=4)).run()
    resumed = Trainer(_shared(split), resume=True, resume_overrides={"steps": 8})
    assert resumed.config.train_memory_slots == 5
    resumed.run()
    assert log_rows(split) == log_rows(whole)
    with pytest.raises(UserError, match=r"--train-memory-slots 6 \(the run's: 5\)"):
        Trainer(_shared(split), resume=True,
                resume_overrides={"steps": 9, "train_memory_slots": 6})  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--memory-init", "shared", "--train-memory-slots", "9"],
         "train_memory_slots: expected 1 to the model's 8 memory slots, got 9"),
        (["--train-memory-slots", "4"],
         "train_memory_slots 4: needs memory_init='shared' (--memory-init shared)"),
    ],
)  # fmt: skip
def test_train_memory_slots_that_cannot_be_used_are_named(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "1", "--out", str(run), *CLI, *argv]) == 1
    assert message in capsys.readouterr().err
    assert not run.exists()


def test_the_baseline_has_no_memory_to_train_on(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "copy", "--controller", "baseline", "--steps", "1", "--out", str(run),
                 "--train-memory-slots", "4", "--no-plots", "--no-progress"]) == 1  # fmt: skip
    assert "train_memory_slots: the LSTM baseline has no memory" in capsys.readouterr().err


def test_zero_or_the_models_own_number_means_the_models_memory(tmp_path):
    for value in (0, 8):
        assert _shared(tmp_path, train_memory_slots=value).resolved().train_memory_slots == 0


def test_runs_from_before_the_setting_trained_on_the_models_memory():
    stored = {k: v for k, v in vars(tiny("x")).items() if k != "train_memory_slots"}
    assert config_from_dict(stored, "old").train_memory_slots == 0
