"""A preset's finishing stage (ntm_fast/train/stages.py): repeat copy with the feedforward
controller trains on 64 slots, then finishes on all 128 from those weights."""

from __future__ import annotations

import pytest
import torch
from tiny_run import log_rows

from ntm_fast.train import TrainConfig, train
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.config import UserError
from ntm_fast.train.stages import STAGE1, train_run

MODEL = dict(memory_slots=8, memory_width=6, controller_size=16, memory_init="shared")
TASK = dict(max_length=2, max_repeats=2)


def _config(out, **kw) -> TrainConfig:
    """The feedforward repeat-copy preset (finishing stage: all slots, lr 1e-4, cosine,
    warm-up 500) on a tiny model trained on 5 of its 8 slots."""
    base = dict(task="repeat_copy", controller="feedforward", steps=4, finish_steps=3,
                train_memory_slots=5, batch_size=2, seed=2, out=out and str(out), log_every=1,
                model_overrides=dict(MODEL), task_overrides=dict(TASK), plots=False,
                checkpoint_every=1000, backend="reference", progress=False)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _weights(run) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(run)["model"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_first_stage_then_the_finishing_stage_from_its_weights(tmp_path):
    run = tmp_path / "run"
    summary = train(_config(run))
    first, last = ckpt.load_checkpoint(run / STAGE1), ckpt.load_checkpoint(run)
    assert (first["step"], first["config"]["train_memory_slots"]) == (4, 5)
    assert first["model"]["weighting_logits"].shape[-1] == 5
    c = last["config"]
    assert (last["step"], c["train_memory_slots"], c["lr"]) == (3, 0, 1e-4)
    assert c["lr_schedule"] == "cosine"
    assert (c["warmup_steps"], c["finish_steps"], c["init_from"]) == (500, 0, str(run / STAGE1))
    assert (c["seed"], c["batch_size"], c["task_overrides"]) == (2, 2, TASK)
    assert last["model"]["weighting_logits"].shape[-1] == 8  # the model's own slots
    assert last["sequences"] == 4 * 2 + 3 * 2  # the log continues stage 1's count
    assert summary["stage1"]["step"] == 4 and summary["step"] == 3


def test_finish_steps_0_is_one_run(tmp_path):
    run = tmp_path / "run"
    summary = train(_config(run, finish_steps=0))
    assert ckpt.load_checkpoint(run)["step"] == 4 and not (run / STAGE1).exists()
    assert "stage1" not in summary


def test_a_stage_1_stopped_early_resumes_and_then_finishes_exactly(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(_config(whole))
    stopped = train(_config(split, stop_cost=1e9))  # stops at the first log row
    assert stopped["reason"] == "stop_cost" and not (split / "checkpoint.pt").exists()
    resumed = train(_config(split), resume=True, resume_overrides={"stop_cost": None})
    assert resumed["stage1"]["reason"] == "steps"
    assert _same(_weights(split), _weights(whole))
    assert log_rows(split) == log_rows(whole) and log_rows(split / STAGE1) == log_rows(
        whole / STAGE1
    )


def test_resume_after_stage_1_finished_runs_only_the_finishing_stage(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(_config(whole))
    train_run(_config(split / STAGE1))  # as if the process died between the stages
    summary = train(_config(split), resume=True, resume_overrides={"log_every": 3})
    assert "stage1" not in summary and ckpt.load_checkpoint(split / STAGE1)["step"] == 4
    assert _same(_weights(split), _weights(whole))
    assert ckpt.load_checkpoint(split)["config"]["log_every"] == 3  # a run-time flag given now


def test_resume_of_the_finishing_stage_continues_it(tmp_path):
    run = tmp_path / "run"
    train(_config(run))
    summary = train(_config(run), resume=True, resume_overrides={"steps": 5})
    assert summary["step"] == 5 and ckpt.load_checkpoint(run)["config"]["lr"] == 1e-4
    assert ckpt.load_checkpoint(run / STAGE1)["step"] == 4  # untouched


def test_a_finished_run_in_out_is_refused_before_stage_1(tmp_path):
    run = tmp_path / "run"
    train(_config(run, finish_steps=0))
    with pytest.raises(UserError, match=r"checkpoint.pt exists: pass --resume"):
        train(_config(run))
    assert not (run / STAGE1).exists()


def test_cli(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--memory-slots", "8", "--memory-width", "6", "--controller-size", "16",
             "--memory-init", "shared", "--train-memory-slots", "5", "--task-arg", "max_length=2",
             "--task-arg", "max_repeats=2", "--batch-size", "2", "--backend", "reference",
             "--no-progress", "--no-plots"]  # fmt: skip
    assert main(["train", "repeat_copy", "--controller", "feedforward", "--steps", "2",
                 "--finish-steps", "2", "--out", str(run), *flags]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"stage 1 of 2 in {run / STAGE1}, then a finishing stage of 2 steps in {run}" in err
    assert "stage 2 of 2: 2 finishing steps from stage 1's weights (--train-memory-slots 0, " in err
    assert f"starting from the weights of {run / STAGE1}" in err
    with pytest.raises(SystemExit) as exc:  # argparse: exit code 2
        main(["train", "repeat_copy", "--controller", "feedforward", "--finish-steps", "-1",
              "--out", str(tmp_path / "x"), *flags])  # fmt: skip
    assert exc.value.code == 2
    assert "--finish-steps: expected an integer >= 0, got -1" in capsys.readouterr().err


def test_under_torchrun_a_staged_run_needs_out(monkeypatch, tmp_path):
    """The default run directory is named after the clock, which ranks may read a second
    apart; one run's Trainer names it on rank 0, two stages cannot."""
    for k, v in dict(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0").items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="finishing stage under torchrun needs --out"):
        train(_config(None))
    assert not (tmp_path / "runs").exists()
