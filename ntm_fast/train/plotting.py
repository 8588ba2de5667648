"""Figures like the paper's, written as PNG with matplotlib's Agg backend (no display needed).

* learning curves: cost (bits/sequence, log axis) against sequences seen, several runs on
  one plot (Figs. 3, 7, 10, 13, 18);
* network output beside the target for the evaluation settings (Figs. 4-5, 8, 11, 14);
* generalisation: cost per sequence at each evaluation setting, one line per run, from the
  runs' ``ntm-fast eval`` results (Fig. 11);
* memory use of one sequence from the trace: inputs, adds, write weightings / outputs, reads,
  read weightings over time (Figs. 6, 9, 12, 15, 17).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import CHECKPOINT, load_checkpoint, load_model
from .config import UserError
from .evaluate import build_task, generalisation_settings
from .rundir import STAGE1
from .runlog import moving_mean, read_run_log
from .sort_analysis import SortMemoryUse, analyse_sort_memory_use
from .tasks import NGramTask, PrioritySortTask, Task

DPI = 80  # keeps each PNG well under 200 KB


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on first use: a run that draws no
    figure (``--no-plots``, ``eval``) does not pay its ~0.5 s import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve_figure(
    logs: Sequence[tuple[str, str | Path]], *, optimal: float | None = None, smooth: int = 1
) -> Any:
    """The figure of :func:`plot_learning_curves` (not saved). The cost axis is logarithmic:
    a converged run's 0.01-bit costs would sit flat on zero on a linear axis. ``smooth``:
    each point the mean of that many logged windows (:func:`.runlog.moving_mean`)."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.6))
    for label, log in logs:
        cols, finish_from = read_run_log(log)
        if cols:
            kseq = [s / 1000 for s in cols["sequences"]]
            cost = moving_mean(cols["cost_bits"], smooth)
            (line,) = ax.plot(kseq, cost, label=label, lw=1)
            if finish_from is not None:  # where a staged run's finishing stage begins
                ax.axvline(finish_from / 1000, color=line.get_color(), ls=":", lw=1)
    if optimal is not None:
        ax.axhline(optimal, color="k", ls="--", lw=1, label="optimal estimator")
    ax.set_xlabel("sequence number (thousands)")
    ax.set_ylabel(f"bits per sequence (log; mean of {smooth} windows)" if smooth > 1
                  else "cost per sequence (bits, log scale)")  # fmt: skip
    ax.set_yscale("log")  # a zero cost is left out (no log of 0)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def plot_learning_curves(
    logs: Sequence[tuple[str, str | Path]],
    path: str | Path,
    *,
    optimal: float | None = None,
    smooth: int = 1,
) -> Path:
    """Cost per sequence (bits, log axis) against sequences seen (thousands), one line per
    run."""
    return _save(learning_curve_figure(logs, optimal=optimal, smooth=smooth), path)


def generalisation_figure(results: Sequence[tuple[str, dict[str, Any]]]) -> Any:
    """Cost per sequence (bits) at each evaluation setting, one line per (label, ``ntm-fast
    eval`` result), like Fig. 11. The settings must be the same in every result (a
    :class:`UserError` otherwise). Linear axis as in the paper: the point is how far each
    model's cost rises beyond the training range."""
    settings = [r["setting"] for r in results[0][1]["rows"]]
    fig, ax = _pyplot().subplots(figsize=(6, 3.6))
    for label, result in results:
        if [r["setting"] for r in result["rows"]] != settings:
            raise UserError(
                f"{label}: its evaluation settings differ from {results[0][0]}'s; "
                "evaluate both runs on the same task to compare them"
            )
        costs = [r["bits_per_sequence"] for r in result["rows"]]  # None: non-finite in JSON
        ax.plot(range(len(settings)), [math.nan if c is None else c for c in costs],
                marker="o", lw=1, label=label)  # fmt: skip
    ax.set_xticks(range(len(settings)), settings, fontsize=8)
    ax.set_ylabel("cost per sequence (bits)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_outputs(examples: Sequence[tuple[str, Tensor, Tensor]], path: str | Path) -> Path:
    """Target above output for each (label, target `(T, O)`, output `(T, O)`) pair, showing
    only the target phase (time on the x axis, channels on the y axis, like Fig. 4)."""
    n = len(examples)
    widths = [max(int(t.shape[0]), 4) for _, t, _ in examples]
    fig, axes = _pyplot().subplots(
        2, n, figsize=(min(2 + 0.12 * sum(widths), 16), 3), squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )  # fmt: skip
    for j, (label, target, output) in enumerate(examples):
        for i, (name, img) in enumerate((("targets", target), ("outputs", output))):
            ax = axes[i][j]
            ax.imshow(img.T.cpu().numpy(), cmap="gray", vmin=0, vmax=1, aspect="auto",
                      interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name)
        axes[0][j].set_title(label, fontsize=8)
    return _save(fig, path)


def plot_memory_use(
    inputs: Tensor, outputs: Tensor, trace: Any, path: str | Path, *, max_rows: int = 64
) -> Path:
    """Fig. 6 layout for sequence 0: left inputs / adds / write weightings, right outputs /
    reads / read weightings (head 0 of each kind), memory rolled and cropped to the
    (circular) window of locations the heads visit, since shifts wrap around."""
    ww = trace.write_weightings[:, 0, 0].cpu()  # (T, N)
    rw = trace.read_weightings[:, 0, 0].cpu()
    start, rows = _visited_window(ww, rw, max_rows)
    ww, rw = torch.roll(ww, 2 - start, 1)[:, :rows], torch.roll(rw, 2 - start, 1)[:, :rows]
    panels = [
        ("Inputs", inputs[:, 0].cpu(), (0, 1)),
        ("Outputs", torch.sigmoid(outputs[:, 0]).cpu(), (0, 1)),
        ("Adds", trace.add[:, 0, 0].cpu(), (None, None)),
        ("Reads", trace.read_vectors[:, 0, 0].cpu(), (None, None)),
        ("Write weightings", ww, (0, 1)),
        ("Read weightings", rw, (0, 1)),
    ]
    fig, axes = _pyplot().subplots(3, 2, figsize=(9, 6.5), sharex=True)
    for ax, (title, img, (lo, up)) in zip(axes.flat, panels, strict=True):
        ax.imshow(
            img.T.numpy(), cmap="gray", vmin=lo, vmax=up, aspect="auto", interpolation="nearest"
        )
        ax.set_title(title, fontsize=9)
        ax.set_yticks([])
    for ax in axes[-1]:
        ax.set_xlabel("time")
    axes[2][0].set_ylabel("location")
    return _save(fig, path)


def optimal_cost(task: Task) -> float | None:
    """N-grams: the Bayesian optimal estimator's mean cost (bits per sequence) on 256 fresh
    sequences, the line of Fig. 13; other tasks: None."""
    if not isinstance(task, NGramTask):
        return None
    bits, _ = NGramTask(999, **task.config()).sample_bits(256)
    return float(task.optimal_cost(bits).mean())


def plot_sort_memory_use(use: SortMemoryUse, path: str | Path) -> Path:
    """Fig. 17's three panels for sequence 0: the locations the linear fit of the priorities
    predicts, the observed write weightings and the read weightings (rotated as fitted)."""
    N = use.write_weightings.shape[1]
    n = use.priorities.shape[0]
    hypothesised = torch.zeros(n, N)
    at = use.fitted_locations.round().long().clamp(0, N - 1)
    hypothesised[torch.arange(n), at] = 1.0
    reads = use.read_weightings[n + 1 :]
    seen = torch.cat([at, use.write_weightings[:n].argmax(1), reads.argmax(1)])
    lo, hi = max(0, int(seen.min()) - 4), min(N, int(seen.max()) + 5)  # the rows in use
    fig, axes = _pyplot().subplots(1, 3, figsize=(11, 3.6), sharey=True)
    panels = [
        (f"Hypothesised locations (R² {use.fit_r2:.2f})", hypothesised),
        (f"Write weightings (head {use.write_head})", use.write_weightings[:n]),
        (
            f"Read weightings (head {use.read_head}, {use.read_hits:.0%} on target, "
            f"order {use.read_order:.2f})",
            reads,
        ),
    ]
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(img[:, lo:hi].T.numpy(), cmap="gray", vmin=0, vmax=1, aspect="auto",
                  interpolation="nearest", origin="lower",
                  extent=(-0.5, img.shape[0] - 0.5, lo - 0.5, hi - 0.5))  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time")
    axes[0].set_ylabel("location (rotated as fitted)")
    return _save(fig, path)


@torch.no_grad()
def write_run_figures(
    out: str | Path,
    model: nn.Module,
    task: Task,
    device: torch.device | str = "cpu",
    *,
    fig_dir: str | Path | None = None,
) -> list[Path]:
    """The figures of the run in ``out`` into ``fig_dir`` (default ``out/figures``): learning
    curve, outputs on the generalisation settings, and memory use (NTM only; for priority sort
    also Fig. 17's, :mod:`ntm_fast.train.sort_analysis`). Uses fresh
    sequences (seed 4321), never the training stream."""
    out = Path(out)
    fig_dir = Path(fig_dir) if fig_dir is not None else out / "figures"
    paths = []
    if (out / "log.csv").exists():
        curve = fig_dir / "learning_curve.png"
        logs = [(out.name, out / "log.csv")]
        paths.append(plot_learning_curves(logs, curve, optimal=optimal_cost(task)))
    was_training = model.training
    model.eval()
    examples = []
    memory_done = False
    for label, cfg in generalisation_settings({"name": task.name, **task.config()})[:5]:
        sample = build_task(cfg, 4321).sample(1)
        x = sample.inputs.to(device)
        has_trace = hasattr(model, "layout")
        result = model(x, trace=True) if has_trace else model(x)
        logits = result[0]
        steps = sample.mask[:, 0].bool()
        examples.append(
            (label, sample.targets[steps, 0], torch.sigmoid(logits[:, 0][steps.to(device)]))
        )
        if has_trace and not memory_done:
            paths.append(plot_memory_use(x, logits, result[2], fig_dir / "memory_use.png"))
            memory_done = True
    if isinstance(task, PrioritySortTask) and hasattr(model, "layout"):  # paper Fig. 17
        use = analyse_sort_memory_use(model, task)
        paths.append(plot_sort_memory_use(use, fig_dir / "sort_memory_use.png"))
    paths.append(plot_outputs(examples, fig_dir / "outputs.png"))
    model.train(was_training)
    return paths


def plot_runs(
    runs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    labels: Sequence[str] | None = None,
    smooth: int = 1,
) -> list[Path]:
    """One learning-curve plot for all ``runs`` (and, for two or more runs that all have an
    ``eval.json`` from ``ntm-fast eval``, one generalisation plot comparing them), plus each
    run's own figures from its checkpoint, all written to ``out`` (default: the first run's
    figures/ directory; with several runs, each run's figures go to a subdirectory named by
    its label). Returns every path written; nothing is written anywhere else."""
    dirs = [Path(r) for r in runs]
    for d in dirs:
        if not (d / "log.csv").is_file() and not (d / STAGE1 / "log.csv").is_file():
            raise UserError(f"{d}: not a run directory (no log.csv)")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: is a file, not a directory for the figures")
    labels = list(labels) if labels else [_label(d) for d in dirs]
    fig_dir = Path(out) if out else dirs[0] / "figures"
    logs = list(zip(labels, [d / "log.csv" for d in dirs], strict=True))
    loaded = [load_model(d / CHECKPOINT) if (d / CHECKPOINT).exists() else None for d in dirs]
    tasks = [None if m is None else build_task(m[0]["task_config"], 0) for m in loaded]
    optimal = optimal_cost(tasks[0]) if tasks[0] is not None else None  # N-grams: Fig. 13's line
    curves = fig_dir / "learning_curves.png"
    paths = [plot_learning_curves(logs, curves, optimal=optimal, smooth=smooth)]
    evals = [d / "eval.json" for d in dirs]
    if len(dirs) > 1 and all(e.is_file() for e in evals):  # every run evaluated: Fig. 11
        results = [(label, _read_eval(e)) for label, e in zip(labels, evals, strict=True)]
        paths.append(_save(generalisation_figure(results), fig_dir / "generalisation.png"))
    for d, label, m, task in zip(dirs, labels, loaded, tasks, strict=True):
        if m is None:
            continue
        model = m[1]
        sub = fig_dir if len(dirs) == 1 else fig_dir / label
        paths += write_run_figures(d, model, task, fig_dir=sub)
    return paths


def _read_eval(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(path.read_text())
        if not result["rows"] or any(
            not isinstance(r["setting"], str)
            or not isinstance(r["bits_per_sequence"], float | int | None)
            for r in result["rows"]
        ):
            raise ValueError("expected rows of a setting name and bits_per_sequence")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not an ntm-fast eval result: {exc}") from None
    return result


def _label(d: Path) -> str:
    try:
        with warnings.catch_warnings():  # a legacy checkpoint's warning comes with the figures
            warnings.simplefilter("ignore")
            c = load_checkpoint(d / CHECKPOINT)["config"]
        return f"NTM {c['controller']}" if c["controller"] != "baseline" else "LSTM"
    except Exception:
        return d.name


def _visited_window(ww: Tensor, rw: Tensor, max_rows: int) -> tuple[int, int]:
    """First location and number of rows of the smallest circular window holding every
    location a head focuses on (weight > 0.2), plus a small margin."""
    N = ww.shape[1]
    used = ((ww.max(0).values > 0.2) | (rw.max(0).values > 0.2)).nonzero().flatten().tolist()
    if not used:
        return 0, min(N, max_rows)
    nxt = [*used[1:], used[0] + N]
    gaps = [b - a for a, b in zip(used, nxt, strict=True)]
    k = max(range(len(gaps)), key=gaps.__getitem__)
    start = nxt[k] % N  # the window begins after the largest unvisited gap
    span = N - gaps[k] + 1
    return start, min(N, max_rows, span + 4)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path
