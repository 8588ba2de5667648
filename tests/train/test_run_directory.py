"""The run directory (issue 16): one training process at a time (a stale lock from a killed
process does not block), stale temporary files removed, ``--out`` naming a file, read-only
and full disks at start, mid-run and during a save - all one-line errors naming the file."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from tiny_run import CLI, log_rows, tiny

from ntm_fast.train import Trainer, UserError
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main


def test_a_second_trainer_on_the_same_directory_is_refused(tmp_path):
    first = Trainer(tiny(tmp_path, steps=4))
    with pytest.raises(UserError, match="in use by another training process"):
        Trainer(tiny(tmp_path, steps=4))
    first.run()  # unaffected; releases the lock when done
    with pytest.raises(UserError, match="in use by another training process"):
        held = Trainer(tiny(tmp_path), resume=True, resume_overrides={"steps": 6})
        Trainer(tiny(tmp_path), resume=True, resume_overrides={"steps": 6})
    held.close()
    Trainer(tiny(tmp_path), resume=True, resume_overrides={"steps": 6}).run()
    assert ckpt.load_checkpoint(tmp_path)["step"] == 6
    assert [r[0] for r in log_rows(tmp_path)] == ["2", "4", "6"]


_HOLD = """
import sys, time
from ntm_fast.train.rundir import RunDir
held = RunDir.open(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def test_a_live_process_blocks_and_a_killed_one_does_not(tmp_path, capsys):
    """Another process holds the lock: ``train`` and ``train --resume`` exit 1 naming the
    directory. After that process is killed with SIGKILL (no clean-up runs; the lock file
    stays behind), ``--resume`` proceeds: the kernel released the lock with the process."""
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "2", "--out", str(run), *CLI]) == 0
    capsys.readouterr()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["train", "copy", "--out", str(run), "--resume", "--steps", "4", *CLI]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "in use by another training process" in err and str(run) in err
        assert main(["train", "copy", "--out", str(run), *CLI]) == 1
        assert "in use" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdout.close()
    assert (run / ".lock").exists()  # left behind, but not held
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["step"] == 4


def test_stale_temporary_files_of_a_killed_save_are_removed(tmp_path):
    Trainer(tiny(tmp_path, steps=2)).run()
    stale = [tmp_path / ".checkpoint.pt.k1ll3d.tmp", tmp_path / ".log.csv.abc.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    other = tmp_path / "notes.tmp"
    other.write_text("mine")
    Trainer(tiny(tmp_path), resume=True, resume_overrides={"steps": 4}).run()
    assert not any(p.exists() for p in stale) and other.read_text() == "mine"


def test_out_pointing_at_a_file(tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("x")
    for argv in (["train", "copy", "--out", str(f), *CLI],
                 ["train", "copy", "--resume", "--out", str(f), *CLI]):  # fmt: skip
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err == f"ntm-fast: error: --out {f}: is a file, not a run directory\n"
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "2", "--out", str(run), *CLI]) == 0
    capsys.readouterr()
    assert main(["plot", str(run), "--out", str(f)]) == 1
    assert "is a file" in capsys.readouterr().err
    assert main(["eval", str(run), "--out", str(tmp_path), "--batches", "1"]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert f.read_text() == "x"


@pytest.fixture
def read_only(monkeypatch):
    """Simulate a read-only file system below a directory (root ignores permission bits, so
    chmod cannot): creating, writing, renaming or removing anything there fails with EROFS."""
    import builtins
    import io

    roots: list[str] = []

    def inside(p) -> bool:
        return any(os.path.abspath(os.fspath(p)).startswith(r) for r in roots)

    def fail(p):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(p))

    real_open, real_os_open = builtins.open, os.open

    def fake_open(file, mode="r", *a, **k):
        if isinstance(file, (str, os.PathLike)) and inside(file) and set(mode) & set("wax+"):
            fail(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            fail(path)
        return real_os_open(path, flags, *a, **k)

    def guard(real):
        def wrapped(path, *a, **k):
            if inside(path):
                fail(path)
            return real(path, *a, **k)

        return wrapped

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("mkdir", "unlink", "remove", "replace", "rename", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    return lambda path: roots.append(os.path.abspath(os.fspath(path)))


def test_read_only_disk_at_start(tmp_path, read_only, capsys):
    read_only(tmp_path)
    for out in (tmp_path / "new-run", tmp_path):
        assert main(["train", "copy", "--out", str(out), *CLI]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"ntm-fast: error: {out}: could not write to the run directory")
        assert "Read-only file system" in err and err.count("\n") == 1


def test_read_only_run_directory_on_resume(tmp_path, read_only, capsys):
    Trainer(tiny(tmp_path, steps=2)).run()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    read_only(tmp_path)
    assert main(["train", "copy", "--out", str(tmp_path), "--resume", "--steps", "4", *CLI]) == 1
    assert "could not write to the run directory" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def _fail_after(n: int, real, what: str = "No space left on device"):
    calls = [0]

    def wrapped(*a, **k):
        calls[0] += 1
        if calls[0] > n:
            raise OSError(errno.ENOSPC, what)
        return real(*a, **k)

    return wrapped


def test_full_disk_mid_run_writing_the_log(tmp_path, monkeypatch, capsys):
    """The third log row cannot be written: one-line error naming log.csv; the checkpoint of
    that step is still saved (a single process), and --resume continues from it."""
    import csv

    # the header and two rows are written, then the disk is full
    monkeypatch.setattr(csv.DictWriter, "writerow", _fail_after(3, csv.DictWriter.writerow))
    argv = ["train", "copy", "--out", str(tmp_path), "--steps", "10", "--log-every", "2", *CLI]
    assert main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    log = tmp_path / "log.csv"
    assert err[-1] == (f"ntm-fast: error: {log}: could not write the training log: No space "
                       "left on device (errno 28)")  # fmt: skip
    assert not any("Traceback" in line for line in err)
    assert [r[0] for r in log_rows(tmp_path)] == ["2", "4"]
    assert ckpt.load_checkpoint(tmp_path)["step"] == 6
    monkeypatch.undo()
    assert main(["train", "copy", "--out", str(tmp_path), "--resume", "--steps", "10", *CLI]) == 0
    assert [r[0] for r in log_rows(tmp_path)] == ["2", "4", "8", "10"]


def test_full_disk_during_a_save(tmp_path, monkeypatch, capsys):
    """The save at step 4 fails: one-line error naming checkpoint.pt; the step-2 checkpoint is
    intact and no temporary file is left."""
    monkeypatch.setattr(torch, "save", _fail_after(1, torch.save))
    argv = ["train", "copy", "--out", str(tmp_path), "--steps", "10", "--checkpoint-every", "2",
            *CLI]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"ntm-fast: error: {tmp_path / 'checkpoint.pt'}: could not save")
    assert "No space left on device" in err and "unchanged: step 2" in err
    monkeypatch.undo()
    assert ckpt.load_checkpoint(tmp_path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "checkpoint.pt", "log.csv"]


def test_eval_on_a_read_only_run_directory_prints_then_reports(tmp_path, read_only, capsys):
    Trainer(tiny(tmp_path, steps=2)).run()
    read_only(tmp_path)
    assert main(["eval", str(tmp_path), "--batches", "1", "--batch-size", "2",
                 "--backend", "reference"]) == 1  # fmt: skip
    out, err = capsys.readouterr()
    assert "| length 120 |" in out  # the result is shown
    assert err == (f"ntm-fast: error: {tmp_path / 'eval.json'}: could not write the "
                   "evaluation: Read-only file system (errno 30)\n")  # fmt: skip
    assert not (tmp_path / "eval.json").exists()
