"""Stopping and resuming (issue 16): the log after a crash reads as one run, SIGTERM saves and
exits 143, SIGUSR1 checkpoints, a NaN cost stops the run keeping the last good checkpoint,
and ``--resume`` never silently ignores a flag or does nothing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from tiny_run import CLI, log_rows, tiny

from ntm_fast.train import NonFiniteError, Trainer, UserError, rundir
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main


def test_log_after_a_crash_is_cut_back_to_the_checkpoint(tmp_path):
    """A run killed after its step-4 checkpoint had logged steps 5 and 6 (and half a line);
    resumed, the log has every step once and equals the uninterrupted run's."""
    Trainer(tiny(tmp_path / "full", steps=8, log_every=1)).run()
    run = tmp_path / "crashed"
    Trainer(tiny(run, steps=4, log_every=1)).run()
    saved = (run / "checkpoint.pt").read_bytes()
    Trainer(tiny(run, log_every=1), resume=True, resume_overrides={"steps": 6}).run()
    (run / "checkpoint.pt").write_bytes(saved)  # as if killed right after logging step 6
    with open(run / "log.csv", "a") as f:
        f.write("7,28,0.5")  # and in the middle of writing step 7
    Trainer(tiny(run, log_every=1), resume=True, resume_overrides={"steps": 8}).run()
    assert [r[0] for r in log_rows(run)] == [str(s) for s in range(1, 9)]
    assert log_rows(run) == log_rows(tmp_path / "full")


def test_sigterm_saves_and_resumes_exactly(tmp_path):
    """What a scheduler does before preemption: SIGTERM mid-run; the step finishes, the
    checkpoint is written, the run reports "terminated" (exit 143 from the CLI, tested
    below), and resuming continues exactly."""
    full = Trainer(tiny(tmp_path / "full", steps=8))
    full.run()
    t = Trainer(tiny(tmp_path / "run", steps=8))
    real = t.train_step

    def step_then_sigterm():
        real()
        if t.step == 3:
            signal.raise_signal(signal.SIGTERM)

    t.train_step = step_then_sigterm
    before = signal.getsignal(signal.SIGTERM)
    assert t.run()["reason"] == "terminated"
    assert signal.getsignal(signal.SIGTERM) is before
    assert ckpt.load_checkpoint(tmp_path / "run")["step"] == 3
    resumed = Trainer(tiny(tmp_path / "run"), resume=True, resume_overrides={"steps": 8})
    resumed.run()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigusr1_checkpoints_and_carries_on(tmp_path, monkeypatch):
    t = Trainer(tiny(tmp_path, steps=6))
    saved, real_save, real_step = [], t.save, t.train_step

    def save():
        saved.append(t.step)
        return real_save()

    def step():
        real_step()
        if t.step == 2:
            signal.raise_signal(signal.SIGUSR1)

    t.save, t.train_step = save, step
    assert t.run()["reason"] == "steps"
    assert saved == [2, 6]


def test_cli_sigterm_exit_code(tmp_path):
    """The real process: ``kill -TERM`` -> checkpoint written, exit code 143, a summary line
    with reason "terminated"; ``--resume`` then finishes the run."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ntm_fast.train", "copy", "--steps", "100000", "--out",
           str(run), "--log-every", "1", "--checkpoint-every", "100000", *CLI]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((run / "log.csv").exists() and len(log_rows(run)) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    summary = json.loads(out.splitlines()[-1])
    assert summary["reason"] == "terminated" and "Traceback" not in err
    step = ckpt.load_checkpoint(run)["step"]
    assert step == summary["step"] >= 2
    assert main(["train", "copy", "--out", str(run), "--resume", "--steps", str(step + 2),
                 *CLI]) == 0  # fmt: skip


@pytest.mark.parametrize(("nan_at", "log_every", "checkpoint_every", "kept"),
                         [(5, 2, 4, 4), (4, 4, 3, 3)])  # fmt: skip
def test_nan_cost_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys, nan_at, log_every, checkpoint_every, kept
):
    """From step ``nan_at`` on the cost is NaN (and so are the weights after that step's
    update). The run stops at the next log (NaN cost) or save (NaN weights) with a one-line
    message; the checkpoint on disk is the last good one; no NaN reaches log.csv or JSON."""
    import ntm_fast.train.objective as train_mod  # batch_loss calls its sequence_cost

    real = train_mod.sequence_cost
    step = {"n": 0}

    def poisoned(logits, batch):
        cost, errors = real(logits, batch)
        step["n"] += 1
        return (cost * float("nan") if step["n"] >= nan_at else cost), errors

    monkeypatch.setattr(train_mod, "sequence_cost", poisoned)
    argv = ["train", "copy", "--out", str(tmp_path), "--steps", "20", "--log-every",
            str(log_every), "--checkpoint-every", str(checkpoint_every), *CLI]  # fmt: skip
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no summary JSON
    last = err.splitlines()[-1]
    assert last.startswith("ntm-fast: error: step ") and "became NaN or inf" in last
    assert f"keeps the last good checkpoint (step {kept})" in last
    state = ckpt.load_checkpoint(tmp_path)
    assert state["step"] == kept
    assert all(t.isfinite().all() for t in state["model"].values())
    assert "nan" not in (tmp_path / "log.csv").read_text().lower()
    monkeypatch.undo()  # resuming with a lower learning rate is allowed (see below)
    assert main(["train", "copy", "--out", str(tmp_path), "--resume", "--steps", "8",
                 *CLI, "--lr", "0.001"]) == 0  # fmt: skip


def test_nan_before_any_checkpoint(tmp_path, monkeypatch):
    t = Trainer(tiny(tmp_path, steps=10, checkpoint_every=100))
    with torch.no_grad():
        next(t.model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteError, match="no checkpoint was written yet"):
        t.run()
    assert not (tmp_path / "checkpoint.pt").exists()


def test_json_is_strict():
    text = rundir.dumps({"cost_bits": float("nan"), "rows": [float("inf"), 1.5]})
    assert json.loads(text) == {"cost_bits": None, "rows": [None, 1.5]}
    assert "NaN" not in text and "Infinity" not in text


def test_resume_refuses_flags_it_cannot_apply(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "2", "--out", str(run), *CLI]) == 0
    capsys.readouterr()
    saved = (run / "checkpoint.pt").read_bytes()
    argv = ["train", "copy", "--out", str(run), "--resume", "--steps", "4", *CLI,
            "--seed", "7", "--memory-slots", "16", "--optimizer", "rmsprop", "--heads", "2",
            "--task-arg", "max_length=5"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("ntm-fast: error: --resume continues") and err.count("\n") == 1
    for text in ("--seed 7 (the run's: 1)", "--memory-slots 16 (the run's: 8)",
                 "--optimizer rmsprop (the run's: adam)", "--heads 2 (the run's: 1)",
                 "--task-arg max_length=5 (the run's: 3)"):  # fmt: skip
        assert text in err, text
    assert (run / "checkpoint.pt").read_bytes() == saved
    # the same command line again plus --resume: every flag equals the run's, accepted
    assert main(["train", "copy", "--out", str(run), "--resume", "--steps", "4", *CLI]) == 0


def test_resume_applies_the_flags_it_can(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "2", "--out", str(run), *CLI]) == 0
    capsys.readouterr()
    assert main(["train", "copy", "--out", str(run), "--resume", "--steps", "4", *CLI,
                 "--lr", "0.001", "--log-every", "1", "--batch-size", "2"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "resuming at step 2; changed: --batch-size 2 (was 4), --lr 0.001 (was 0.003)" in err
    state = ckpt.load_checkpoint(run)
    assert state["config"]["lr"] == 0.001 and state["config"]["log_every"] == 1
    assert state["sequences"] == 2 * 4 + 2 * 2
    assert [r[0] for r in log_rows(run)] == ["2", "3", "4"]


def test_resume_of_a_finished_run_is_not_a_silent_no_op(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "4", "--out", str(run), *CLI]) == 0
    capsys.readouterr()
    before = (run / "checkpoint.pt").read_bytes()
    for steps in ([], ["--steps", "4"], ["--steps", "3"]):
        assert main(["train", "copy", "--out", str(run), "--resume", *steps, *CLI]) == 1
        err = capsys.readouterr().err
        assert "already at step 4 of" in err and "--steps N with N > 4" in err
    assert (run / "checkpoint.pt").read_bytes() == before


def test_resume_needs_the_lock_free_and_a_finished_copy_still_loads(tmp_path):
    """A copied run directory (with its .lock) resumes: the lock is a kernel lock, not a file."""
    Trainer(tiny(tmp_path / "a", steps=2)).run()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    Trainer(tiny(tmp_path / "b"), resume=True, resume_overrides={"steps": 3}).run()
    with pytest.raises(UserError, match="already at step 3"):
        Trainer(tiny(tmp_path / "b"), resume=True)
