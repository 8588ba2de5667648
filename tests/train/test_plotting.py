"""``ntm-fast plot`` (issue 16): the learning curve's cost axis is logarithmic (a converged
run's 0.01-bit costs are visible), figures go only where ``--out`` says, and a malformed log
is a one-line error."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
from tiny_run import CLI

from ntm_fast.train import plotting
from ntm_fast.train.cli import main
from ntm_fast.train.runlog import moving_mean


def test_learning_curve_cost_axis_is_logarithmic(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,sequences,cost_bits,bit_errors,seconds,seq_per_s\n"
                   "1,32,40.0,5,1,32\n2,64,0.5,0,2,32\n3,96,0.01,0,3,32\n")  # fmt: skip
    fig = plotting.learning_curve_figure([("run", log)])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    assert low < 0.01 and high > 40  # all three costs are on the axis
    plt.close(fig)


def test_moving_mean_averages_the_windows_before_each_point():
    assert moving_mean([4.0, 2.0, 6.0, 0.0, 10.0], 1) == [4.0, 2.0, 6.0, 0.0, 10.0]
    assert moving_mean([4.0, 2.0, 6.0, 0.0, 10.0], 2) == [4.0, 3.0, 4.0, 3.0, 5.0]
    assert moving_mean([4.0, 2.0, 6.0, 0.0, 10.0], 3) == [4.0, 3.0, 4.0, 8 / 3, 16 / 3]


def test_smoothed_curve_is_drawn_and_labelled(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("step,sequences,cost_bits,bit_errors,seconds,seq_per_s\n"
                   "1,32,40.0,5,1,32\n2,64,0.5,0,2,32\n3,96,0.01,0,3,32\n")  # fmt: skip
    fig = plotting.learning_curve_figure([("run", log)], smooth=2)
    ax = fig.axes[0]
    assert list(ax.lines[0].get_ydata()) == [40.0, 20.25, 0.255]
    assert "mean of 2 windows" in ax.get_ylabel()
    plt.close(fig)
    assert main(["plot", str(tmp_path), "--smooth", "0"]) == 1
    assert "--smooth: expected an int >= 1" in capsys.readouterr().err


def test_plot_writes_only_to_out_and_lists_every_file(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "copy", "--steps", "2", "--log-every", "1", "--out", str(run),
                 *CLI]) == 0  # fmt: skip
    capsys.readouterr()
    assert not (run / "figures").exists()  # --no-plots
    figs = tmp_path / "figs"
    assert main(["plot", str(run), "--out", str(figs)]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(p) for p in figs.iterdir())
    assert {p.name for p in figs.iterdir()} >= {"learning_curves.png", "learning_curve.png"}
    assert not (run / "figures").exists()  # the run's own figures are not redrawn


def test_malformed_log_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "log.csv").write_text("step,sequences,cost_bits\n1,32,0.5\n2,64,0.4step,3\n")
    assert main(["plot", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ntm-fast: error: {tmp_path / 'log.csv'}: not a well-formed")


def test_ngrams_runs_are_plotted_beside_the_optimal_estimator(tmp_path, monkeypatch, capsys):
    """Fig. 13: ``ntm-fast plot`` of N-grams runs draws the optimal estimator's cost as a
    line beside the runs' curves; other tasks have none."""
    cli = [a for a in CLI if a not in ("max_length=3", "--task-arg")]
    seen = []
    real = plotting.plot_learning_curves

    def recording(logs, path, optimal=None, smooth=1):
        seen.append(optimal)
        return real(logs, path, smooth=smooth)

    monkeypatch.setattr(plotting, "plot_learning_curves", recording)
    for task in ("ngrams", "copy"):
        run = tmp_path / task
        assert main(["train", task, "--steps", "2", "--log-every", "1", "--out", str(run),
                     "--task-arg", "length=12" if task == "ngrams" else "max_length=3",
                     *cli]) == 0  # fmt: skip
        seen.clear()
        assert main(["plot", str(run), "--out", str(tmp_path / f"{task}-figs")]) == 0
        if task == "ngrams":
            assert len(seen) == 2 and seen[0] == seen[1] and 0 < seen[0] < 12  # bits / sequence
        else:
            assert seen == [None, None]
    capsys.readouterr()


def _evaluated_run(tmp_path, name, argv=()):
    run = tmp_path / name
    assert main(["train", "copy", "--steps", "2", "--log-every", "1", "--out", str(run),
                 *CLI, *argv]) == 0  # fmt: skip
    assert main(["eval", str(run), "--batches", "1", "--batch-size", "2"]) == 0
    return run


def test_evaluated_runs_get_a_generalisation_plot(tmp_path, monkeypatch, capsys):
    """Fig. 11: with an eval.json in every run, ``ntm-fast plot`` also draws cost per sequence
    at each evaluation setting, one line per run, from those results."""
    a, b = _evaluated_run(tmp_path, "a"), _evaluated_run(tmp_path, "b", ["--seed", "2"])
    drawn = []
    real = plotting.generalisation_figure
    monkeypatch.setattr(plotting, "generalisation_figure", lambda r: drawn.append(r) or real(r))
    figs = tmp_path / "figs"
    assert main(["plot", str(a), str(b), "--out", str(figs), "--labels", "A", "B"]) == 0
    assert (figs / "generalisation.png").is_file()
    (results,) = drawn
    assert [label for label, _ in results] == ["A", "B"]
    ax = real(results).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        r["setting"] for r in results[0][1]["rows"]
    ]
    assert list(ax.lines[1].get_ydata()) == [r["bits_per_sequence"] for r in results[1][1]["rows"]]
    plt.close("all")
    (b / "eval.json").unlink()  # one run not evaluated: learning curves only
    figs2 = tmp_path / "figs2"
    assert main(["plot", str(a), str(b), "--out", str(figs2)]) == 0
    assert not (figs2 / "generalisation.png").exists()
    capsys.readouterr()


def test_generalisation_plot_of_different_settings_or_a_bad_eval_is_an_error(tmp_path, capsys):
    a, b = _evaluated_run(tmp_path, "a"), _evaluated_run(tmp_path, "b")
    result = json.loads((b / "eval.json").read_text())
    result["rows"] = result["rows"][:2]
    (b / "eval.json").write_text(json.dumps(result))
    assert main(["plot", str(a), str(b), "--out", str(tmp_path / "f"), "--labels", "A", "B"]) == 1
    assert "B: its evaluation settings differ from A's" in capsys.readouterr().err
    (b / "eval.json").write_text('{"rows": 3}')
    assert main(["plot", str(a), str(b), "--out", str(tmp_path / "f")]) == 1
    assert f"{b / 'eval.json'}: not an ntm-fast eval result" in capsys.readouterr().err
