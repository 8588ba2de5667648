"""``ntm-fast train --init-from CHECKPOINT``: a new run from a trained model's weights
(ntm_fast/train/warm_start.py)."""

from __future__ import annotations

import pytest
import torch
from tiny_run import CLI, TINY, flip_bytes_in_largest_tensor, log_rows, tiny

from ntm_fast.train import Trainer
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.config import UserError

SHARED = {**TINY, "memory_init": "shared"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny copy run of 6 steps (its checkpoint is the source of the warm starts)."""
    run = tmp_path_factory.mktemp("source") / "run"
    Trainer(tiny(run)).run()
    return run


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_new_run_starts_from_the_weights_and_nothing_else(source, tmp_path):
    t = Trainer(tiny(tmp_path / "warm", init_from=str(source), seed=5, lr=1e-3))
    stored = ckpt.load_checkpoint(source)["model"]
    got = _weights(t.model)
    assert got.keys() == stored.keys()
    for k in got:
        assert torch.equal(got[k], stored[k]), k
    assert t.step == 0  # a new run: step count, optimiser, data afresh
    assert t.sequences == 24  # ... but its log continues the source's sequence count
    assert not t.optimizer.state
    assert (t.warm_start.step, t.warm_start.sequences) == (6, 24)
    t.run()
    saved = ckpt.load_checkpoint(tmp_path / "warm")
    assert saved["config"]["init_from"] == str(source)  # provenance
    assert saved["step"] == 6 and saved["sequences"] == 48
    rows = (tmp_path / "warm" / "log.csv").read_text().splitlines()
    assert rows[1].split(",")[:2] == ["2", "32"]  # step 2, 24 + 2 x 4 sequences


def test_the_model_comes_from_the_checkpoint_not_the_preset(source, tmp_path):
    """Without model flags the preset would build 100 controller units; the source has 16."""
    t = Trainer(tiny(tmp_path / "warm", init_from=str(source), model_overrides={}))
    assert t.model_config["controller_size"] == TINY["controller_size"]
    assert t.model_config == ckpt.load_checkpoint(source)["model_config"]


def test_it_learns_on_from_where_the_source_was(source, tmp_path):
    """The warm run's first logged cost is the source's cost level, not a fresh model's."""
    fresh = tmp_path / "fresh"
    Trainer(tiny(fresh, steps=2, lr=1e-9)).run()
    Trainer(tiny(tmp_path / "warm", init_from=str(source), steps=2, lr=1e-9)).run()
    trained = Trainer(tiny(tmp_path / "again", init_from=str(source), steps=2, lr=1e-9))
    trained.run()
    assert log_rows(tmp_path / "warm") == log_rows(tmp_path / "again")  # deterministic
    assert log_rows(tmp_path / "warm") != log_rows(fresh)


def test_a_warm_started_run_resumes_exactly(source, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    Trainer(tiny(whole, init_from=str(source), steps=8, checkpoint_every=4)).run()
    Trainer(tiny(split, init_from=str(source), steps=4, checkpoint_every=4)).run()
    Trainer(tiny(split), resume=True, resume_overrides={"steps": 8}).run()
    assert log_rows(split) == log_rows(whole)
    a, b = (ckpt.load_checkpoint(d)["model"] for d in (whole, split))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UserError, match=r"--init-from .*the run's"):
        Trainer(tiny(split), resume=True, resume_overrides={"steps": 9, "init_from": "elsewhere"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(controller="feedforward"), "holds a copy model with --controller lstm; this run "
         "trains copy with --controller feedforward"),
        (dict(task="repeat_copy", task_overrides={}), r"holds a copy model .* this run trains "
         "repeat_copy"),
        (dict(model_overrides={**TINY, "memory_width": 7}), r"--memory-width 7 \(the "
         r"checkpoint's: 6\)"),
        (dict(task_overrides={"max_length": 3, "bits": 4}), r"the task's input size 5 \(the "
         r"checkpoint's: 9\), the task's output size 4 \(the checkpoint's: 8\)"),
    ],
)  # fmt: skip
def test_another_task_controller_or_model_is_refused(source, tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        Trainer(tiny(tmp_path / "warm", init_from=str(source), **change))
    assert not (tmp_path / "warm" / "checkpoint.pt").exists()


def test_missing_or_corrupt_checkpoints_are_refused_by_name(source, tmp_path):
    with pytest.raises(UserError, match=r"--init-from: .*nowhere.*no such checkpoint file"):
        Trainer(tiny(tmp_path / "a", init_from=str(tmp_path / "nowhere")))
    bad = tmp_path / "bad.pt"
    bad.write_bytes((source / "checkpoint.pt").read_bytes())
    flip_bytes_in_largest_tensor(bad)
    with pytest.raises(UserError, match=r"--init-from: .*bad.pt: checksum mismatch"):
        Trainer(tiny(tmp_path / "b", init_from=str(bad)))


def test_a_model_trained_on_fewer_slots_grows_to_the_new_runs(tmp_path):
    on5 = tmp_path / "on5"
    Trainer(tiny(on5, model_overrides=dict(SHARED), train_memory_slots=5)).run()
    t = Trainer(tiny(tmp_path / "on8", init_from=str(on5), model_overrides=dict(SHARED),
                     train_memory_slots=0))  # fmt: skip
    assert t.model.state_dict()["weighting_logits"].shape[-1] == 8
    again = Trainer(tiny(tmp_path / "on5b", init_from=str(on5), model_overrides=dict(SHARED),
                         train_memory_slots=5))  # fmt: skip
    stored = ckpt.load_checkpoint(on5)["model"]
    assert all(torch.equal(again.model.state_dict()[k], stored[k]) for k in stored)
    with pytest.raises(UserError, match=r"--init-from: .*expected at least the 5 slots"):
        Trainer(tiny(tmp_path / "on4", init_from=str(on5), model_overrides=dict(SHARED),
                     train_memory_slots=4))  # fmt: skip


def test_cli_flag_and_header(source, tmp_path, capsys):
    out = tmp_path / "warm"
    assert main(["train", "copy", "--steps", "2", "--out", str(out), *CLI,
                 "--init-from", str(source)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"starting from the weights of {source} (trained 6 steps, 24 sequences," in err
    assert main(["train", "copy", "--steps", "3", "--out", str(out), *CLI, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resuming at step 2 (a run started from the weights of {source})" in err
