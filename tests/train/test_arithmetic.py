"""A checkpoint records the arithmetic its run computed with (ntm_fast.train.arithmetic: torch
version, CPU capability, GPU model); resuming under other arithmetic works and says that the
continuation will not match an uninterrupted run bit for bit; a mistyped record is refused."""

from __future__ import annotations

import pytest
import torch
from tiny_run import CLI, same_weights, tiny

from ntm_fast.train import Trainer
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.arithmetic import KEYS, arithmetic, describe_change
from ntm_fast.train.cli import main

NOW = arithmetic(torch.device("cpu"))


def test_it_names_this_machine():
    assert tuple(NOW) == KEYS
    assert NOW == {"torch": str(torch.__version__),
                   "cpu": torch.backends.cpu.get_cpu_capability(), "gpu": "none"}  # fmt: skip
    assert all(type(v) is str for v in NOW.values())  # a plain str: loads with weights_only


def test_describe_change():
    assert describe_change(None, NOW) is None  # a checkpoint from before the record
    assert describe_change(dict(NOW), NOW) is None
    note = describe_change({**NOW, "cpu": "OTHER", "torch": "1.0"}, NOW)
    assert note is not None
    assert f"torch 1.0 -> {NOW['torch']}, cpu OTHER -> {NOW['cpu']}" in note
    assert "bit for bit" in note and "gpu" not in note


def test_a_checkpoint_records_it(tmp_path):
    Trainer(tiny(tmp_path / "run", steps=2)).run()
    assert ckpt.load_checkpoint(tmp_path / "run")["arithmetic"] == NOW


def _edit_record(run, record) -> None:
    path = run / "checkpoint.pt"
    state = ckpt.load_checkpoint(path)
    if record is None:
        del state["arithmetic"]
    else:
        state["arithmetic"] = record
    ckpt.save_checkpoint(path, state)


@pytest.mark.parametrize("record", [None, "same", "other"])
def test_resume_says_when_it_differs_and_stays_exact(tmp_path, capsys, record):
    run, straight = tmp_path / "run", tmp_path / "straight"
    args = ["train", "copy", *CLI]
    assert main([*args, "--steps", "3", "--out", str(run)]) == 0
    assert main([*args, "--steps", "6", "--out", str(straight)]) == 0
    _edit_record(run, {"same": NOW, "other": {**NOW, "cpu": "AVX2-ELSEWHERE"}}.get(record))
    capsys.readouterr()
    assert main([*args, "--steps", "6", "--out", str(run), "--resume"]) == 0
    err = capsys.readouterr().err
    said = f"cpu AVX2-ELSEWHERE -> {NOW['cpu']}"
    assert (said in err) == (record == "other")
    assert "other arithmetic" not in err or record == "other"
    # the note is a note: here the arithmetic is in fact the same, so the run is exact
    assert same_weights(ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight))
    assert ckpt.load_checkpoint(run)["arithmetic"] == NOW  # rewritten by the resumed run


@pytest.mark.parametrize("bad", [["AVX2"], {"cpu": 2}, {1: "x"}])
def test_a_mistyped_record_is_refused(tmp_path, bad):
    Trainer(tiny(tmp_path / "run", steps=2)).run()
    _edit_record(tmp_path / "run", bad)
    with pytest.raises(ckpt.CheckpointError, match="field 'arithmetic' should be a dict"):
        ckpt.load_for_resume(tmp_path / "run" / "checkpoint.pt", "copy", "lstm")
