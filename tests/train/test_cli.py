"""``ntm-fast`` end to end on a tiny configuration, and its errors for bad arguments."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ntm_fast.train.cli import main

ROOT = Path(__file__).resolve().parents[2]

TINY = ["--memory-slots", "8", "--memory-width", "4", "--controller-size", "8",
        "--task-arg", "max_length=3", "--batch-size", "2", "--log-every", "2",
        "--backend", "reference", "--no-progress"]  # fmt: skip


def test_train_eval_plot_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "4", "--out", str(run), *TINY]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 4 and summary["reason"] == "steps"
    for name in ("checkpoint.pt", "log.csv", "figures/learning_curve.png",
                 "figures/outputs.png", "figures/memory_use.png"):  # fmt: skip
        assert (run / name).is_file(), name
    # resume for two more steps
    assert main(["train", "copy", "--out", str(run), "--resume", "--steps", "6",
                 "--no-plots", "--no-progress"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 6

    assert main(["eval", str(run), "--batches", "1", "--batch-size", "2",
                 "--backend", "reference"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    result = json.loads((run / "eval.json").read_text())
    settings = [r["setting"] for r in result["rows"]]
    assert settings == ["length 10", "length 20", "length 30", "length 50", "length 120"]
    assert all(0 <= r["bit_error_rate"] <= 1 and r["bits_per_sequence"] > 0
               for r in result["rows"])  # fmt: skip
    assert "| length 120 |" in out

    other = tmp_path / "other"
    assert main(["train", "copy", "--controller", "baseline", "--hidden-size", "8",
                 "--steps", "2", "--out", str(other), *TINY[6:]]) == 0  # fmt: skip
    capsys.readouterr()
    figs = tmp_path / "figs"
    assert main(["plot", str(run), str(other), "--out", str(figs)]) == 0
    assert (figs / "learning_curves.png").stat().st_size > 1000


@pytest.mark.parametrize("task", ["repeat_copy", "associative-recall", "ngrams", "priority_sort"])
def test_other_tasks_train_and_evaluate(tmp_path, task, capsys):
    small = {
        "repeat_copy": [
            "--task-arg",
            "max_length=2",
            "--task-arg",
            "max_repeats=2",
            "--finish-steps",
            "2",
        ],
        "associative-recall": ["--task-arg", "max_items=3"],
        "ngrams": ["--task-arg", "length=12"],
        "priority_sort": ["--task-arg", "inputs=4", "--task-arg", "outputs=3"],
    }[task]
    run = tmp_path / "r"
    args = ["train", task, "--steps", "2", "--out", str(run), *TINY[:6], *TINY[8:], *small]
    assert main(args) == 0
    assert main(["eval", str(run), "--batches", "1", "--batch-size", "2",
                 "--backend", "reference"]) == 0  # fmt: skip
    rows = json.loads((run / "eval.json").read_text())["rows"]
    if task == "ngrams":
        assert 0 < rows[0]["optimal_bits_per_sequence"] < 24
    if task == "associative-recall":
        assert rows[-1]["setting"] == "20 items"
    if task == "repeat_copy":
        assert all(0 <= r["copy_bit_error_rate"] <= 1 and 0 <= r["end_marker_right"] <= 1
                   for r in rows)  # fmt: skip
        assert "copy bits wrong | end marker right |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "sorting"], "unknown task 'sorting'"),
        (["train", "copy", "--steps", "0"], "expected an integer >= 1"),
        (["train", "copy", "--lr", "abc"], "expected a number"),
        (["train", "copy", "--optimizer", "sgd"], "invalid choice"),
        (["train", "copy", "--controller", "gru"], "invalid choice"),
        (["train", "copy", "--task-arg", "max_length"], "KEY=NUMBER"),
        (["train", "copy", "--warmup", "x"], "invalid int value"),
        (["train", "copy", "--clip-norm", "x"], "invalid float value"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_user_errors_exit_1_without_traceback(tmp_path, capsys):
    missing = tmp_path / "nope" / "checkpoint.pt"
    assert main(["eval", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "ntm-fast: error:" in err and str(missing) in err and "Traceback" not in err
    assert main(["train", "copy", "--resume", "--out", str(tmp_path / "empty")]) == 1
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["train", "copy", "--resume"]) == 1
    assert "--resume needs --out" in capsys.readouterr().err
    assert main(["train", "copy", "--task-arg", "max_length=0", "--out", str(tmp_path / "x")]) == 1
    assert "length" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err
    corrupt = tmp_path / "bad.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert main(["eval", str(corrupt)]) == 1
    assert "bad.pt" in capsys.readouterr().err


def test_module_entry_point():
    """``python -m ntm_fast.train`` is the same command (one subprocess: imports are slow)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ntm_fast.train", "copy", "--batch-size", "-3"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "ntm-fast train" in proc.stderr and "--batch-size" in proc.stderr


def test_eval_into_a_closed_pipe_still_saves_the_result(tmp_path):
    """``ntm-fast eval RUN | head``: the reader leaves before the table is printed; the JSON is
    still written, with no error or traceback (one subprocess: stdout must be a real pipe)."""
    out = tmp_path / "eval.json"
    run = "docs/checkpoints/copy-hold-lstm-seed0"
    code = "import sys; from ntm_fast.train.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["eval", run, "--batches", "1", "--batch-size", "2", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    proc.stdout.close()  # before the child (still importing torch) writes anything
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert "error" not in err and "Traceback" not in err
    result = json.loads(out.read_text())
    assert result["task_options"] == {"hold_delimiter": 1}  # and the title names it
    assert result["rows"][0]["setting"] == "length 10"
