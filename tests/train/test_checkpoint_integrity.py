"""Checkpoint integrity (issue 16): a content checksum verified on every load, legacy
checkpoints without one, hand-edited checkpoints with missing or mistyped fields, and NaN
weights - each a one-line error naming the file, never silently different numbers."""

from __future__ import annotations

import math
import re
import warnings

import pytest
import torch
from tiny_run import CLI, flip_bytes_in_largest_tensor, tiny

from ntm_fast.train import Trainer
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.evaluate import evaluate


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-step run (with optimiser state) to copy and damage."""
    run = tmp_path_factory.mktemp("run")
    Trainer(tiny(run, steps=4, optimizer="adam")).run()
    return (run / "checkpoint.pt").read_bytes()


def _run(tmp_path, trained):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(trained)
    return run


def test_bit_flip_inside_a_tensor_record_is_detected(tmp_path, trained, capsys):
    run = _run(tmp_path, trained)
    path = run / "checkpoint.pt"
    record = flip_bytes_in_largest_tensor(path)
    data = torch.load(path, weights_only=True)  # the zip itself still loads: no CRC check
    assert data["format"] == ckpt.FORMAT, record
    with pytest.raises(ckpt.CheckpointError, match=r"checkpoint\.pt: checksum mismatch"):
        ckpt.load_checkpoint(path)
    with pytest.raises(ckpt.CheckpointError, match="checksum mismatch"):
        Trainer(tiny(run, steps=8), resume=True)
    assert main(["eval", str(run), "--batches", "1", "--batch-size", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ntm-fast: error: ") and str(path) in err and "Traceback" not in err
    assert main(["train", "copy", "--out", str(run), "--resume", "--steps", "8", *CLI]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (run / "eval.json").exists()


def test_checksum_covers_every_field(tmp_path, trained):
    run = _run(tmp_path, trained)
    path = run / "checkpoint.pt"
    data = torch.load(path, weights_only=True)
    assert data["checksum"] == ckpt.content_checksum(data)
    for edit in (
        lambda d: d.update(step=d["step"] + 1),
        lambda d: d["config"].update(lr=1.0),
        lambda d: d["optimizer"]["state"][0]["exp_avg"].view(-1)[0].add_(1e-7),
        lambda d: d["torch_rng"].view(-1)[5].add_(1),
        lambda d: d.update(elapsed=math.nextafter(d["elapsed"], 1e9)),
    ):
        copy = torch.load(path, weights_only=True)
        edit(copy)
        torch.save(copy, path)  # an edit with plain torch.save keeps the old checksum
        with pytest.raises(ckpt.CheckpointError, match="checksum mismatch"):
            ckpt.load_checkpoint(path)
    torch.save(data, path)
    assert ckpt.load_checkpoint(path)["step"] == 4


def test_legacy_checkpoint_without_checksum_loads_with_a_warning(tmp_path, trained):
    """Decision: checkpoints written before checksums (format v1) still load and resume (no
    committed checkpoint needs it, but users' runs may), with a warning that they cannot be
    verified; the resumed run's next save writes the checksummed format."""
    run = _run(tmp_path, trained)
    path = run / "checkpoint.pt"
    data = torch.load(path, weights_only=True)
    del data["checksum"]
    data["format"] = "ntm_fast-checkpoint-v1"
    torch.save(data, path)
    with pytest.warns(RuntimeWarning, match="cannot be verified"):
        assert ckpt.load_checkpoint(path)["step"] == 4
    with pytest.warns(RuntimeWarning, match="cannot be verified"):
        t = Trainer(tiny(run), resume=True, resume_overrides={"steps": 5})
    t.run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ckpt.load_checkpoint(path)["format"] == ckpt.FORMAT


EDITS = {
    "missing torch_rng": (lambda d: d.pop("torch_rng"), "lacks ['torch_rng']"),
    "missing config.task": (lambda d: d["config"].pop("task"), "config lacks 'task'"),
    "step as string": (lambda d: d.update(step="4"), "field 'step' should be an int"),
    "negative step": (lambda d: d.update(step=-1), "field 'step' should be an int >= 0"),
    "lr as string": (lambda d: d["config"].update(lr="fast"), "field 'lr' should be"),
    "unknown config field": (lambda d: d["config"].update(speed=3), "unknown fields ['speed']"),
    "log_acc shape": (lambda d: d.update(log_acc=torch.zeros(2)), "field 'log_acc'"),
    "model not tensors": (lambda d: d["model"].update(x=3), "field 'model'"),
    "rng dtype": (lambda d: d.update(torch_rng=torch.zeros(4)), "field 'torch_rng'"),
    "optimizer state": (lambda d: d["optimizer"].pop("state"), "does not match"),
    "task generator": (lambda d: d.update(task={}), "does not match"),
    "config is a list": (lambda d: d.update(config=[1]), "field 'config' should be a dict"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_hand_edited_checkpoint_is_a_clear_error(tmp_path, trained, edit, capsys):
    """Edited and re-saved with ntm_fast's own save_checkpoint (so the checksum matches):
    every field the run reads is checked, and the error names the file and the field."""
    run = _run(tmp_path, trained)
    path = run / "checkpoint.pt"
    data = torch.load(path, weights_only=True)
    change, message = EDITS[edit]
    change(data)
    ckpt.save_checkpoint(path, data)
    with pytest.raises(ckpt.CheckpointError, match=re.escape(message)) as info:
        Trainer(tiny(run, steps=8), resume=True)
    assert str(path) in str(info.value)
    assert main(["train", "copy", "--out", str(run), "--resume", "--steps", "8", *CLI]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ntm-fast: error: ") and str(path) in err


@pytest.mark.parametrize("where", ["model", "optimizer"])
def test_nan_in_a_checkpoint_is_refused(tmp_path, trained, where, capsys):
    run = _run(tmp_path, trained)
    path = run / "checkpoint.pt"
    data = torch.load(path, weights_only=True)
    if where == "model":
        data["model"]["output.weight"].view(-1)[3] = float("nan")
    else:
        data["optimizer"]["state"][1]["exp_avg_sq"].view(-1)[0] = float("inf")
    ckpt.save_checkpoint(path, data)
    with pytest.raises(ckpt.CheckpointError, match="holds NaN or inf"):
        Trainer(tiny(run, steps=8), resume=True)
    if where == "model":  # evaluation would only produce NaN: refused, no eval.json
        with pytest.raises(ckpt.CheckpointError, match=r"'output\.weight' holds NaN or inf"):
            evaluate(run, batches=1, batch_size=2, backend="reference")
        assert main(["eval", str(run), "--batches", "1", "--batch-size", "2"]) == 1
        assert "holds NaN or inf" in capsys.readouterr().err
        assert not (run / "eval.json").exists()


def test_not_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    """``eval`` on files that are not checkpoints: text, a CSV log, a tensor, a list."""
    files = {"notes.txt": b"hello", "log.csv": b"step,sequences\n1,2\n", "empty.pt": b""}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    for name in (*files, "tensor.pt", "list.pt"):
        assert main(["eval", str(tmp_path / name)]) == 1, name
        err = capsys.readouterr().err
        assert err.startswith("ntm-fast: error: ") and name in err and "Traceback" not in err
