"""``ntm-fast plot RUN`` of a staged run (stages.py) draws the first stage and the finishing
stage as one curve, with the hand-over marked."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from test_stages import _config

from ntm_fast.train import plotting, train
from ntm_fast.train.cli import main
from ntm_fast.train.config import UserError
from ntm_fast.train.rundir import STAGE1
from ntm_fast.train.runlog import read_log, read_run_log

HEADER = "step,sequences,cost_bits,bit_errors,seconds,seq_per_s\n"


def _log(path, rows: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + rows)


def test_a_staged_runs_log_is_its_first_stage_then_its_finishing_stage(tmp_path):
    _log(tmp_path / STAGE1 / "log.csv", "1,2,50.0,4,1,2\n2,4,9.0,1,2,2\n")
    _log(tmp_path / "log.csv", "1,6,3.0,0,1,2\n2,8,1.0,0,2,2\n")
    cols, finish_from = read_run_log(tmp_path / "log.csv")
    assert cols["sequences"] == [2, 4, 6, 8] and cols["cost_bits"] == [50, 9, 3, 1]
    assert cols["step"] == [1, 2, 1, 2] and finish_from == 4
    fig = plotting.learning_curve_figure([("run", tmp_path / "log.csv")])
    (curve,) = fig.axes[0].get_lines()[:1]
    assert list(curve.get_xdata()) == [0.002, 0.004, 0.006, 0.008]
    marks = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == ":"]
    assert [list(m.get_xdata()) for m in marks] == [[0.004, 0.004]]  # the hand-over
    plt.close(fig)


def test_one_stage_runs_and_runs_still_in_their_first_stage(tmp_path):
    one = tmp_path / "one" / "log.csv"
    _log(one, "1,2,5.0,1,1,2\n")
    assert read_run_log(one) == (read_log(one), None)
    first_only = tmp_path / "staged"
    _log(first_only / STAGE1 / "log.csv", "1,2,5.0,1,1,2\n")
    assert read_run_log(first_only / "log.csv") == (read_log(first_only / STAGE1 / "log.csv"), None)
    _log(first_only / "log.csv", "")  # the finishing stage started, nothing logged yet
    assert read_run_log(first_only / "log.csv")[1] is None


def test_stages_with_different_columns_are_an_error(tmp_path):
    _log(tmp_path / STAGE1 / "log.csv", "1,2,5.0,1,1,2\n")
    (tmp_path / "log.csv").write_text("step,sequences,cost_bits\n1,4,3.0\n")
    with pytest.raises(UserError, match="columns differ from the first stage's"):
        read_run_log(tmp_path / "log.csv")


def test_plot_of_a_trained_staged_run(tmp_path, capsys):
    run = tmp_path / "run"
    train(_config(run))
    figs = tmp_path / "figs"
    assert main(["plot", str(run), "--out", str(figs)]) == 0
    assert {"learning_curves.png", "outputs.png"} <= {p.name for p in figs.iterdir()}
    cols, finish_from = read_run_log(run / "log.csv")
    first = read_log(run / STAGE1 / "log.csv")
    assert cols["sequences"][: len(first["sequences"])] == first["sequences"]
    assert finish_from == first["sequences"][-1] < cols["sequences"][-1]
    # a staged run killed in its first stage can still be plotted (no RUN/log.csv yet)
    (run / "log.csv").unlink()
    capsys.readouterr()
    assert main(["plot", str(run), "--out", str(tmp_path / "early")]) == 0
