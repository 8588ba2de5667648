"""Generalisation tests as in the paper's section 4, for a trained checkpoint.

* copy: lengths 10, 20, 30, 50 and 120 (trained on 1..20; Fig. 4);
* repeat copy: the training maximum (length 10, 10 repeats), doubled length, doubled repeats
  (Fig. 8; the count keeps the training normalisation);
* associative recall: 6 to 20 items (trained on 2..6; Fig. 11);
* N-grams: 200-bit sequences, beside the Bayesian optimal estimator of eq. (10) (Fig. 13);
* priority sort: the training distribution, priorities held 0.1, 0.05 and 0.03 apart, the
  errors by how close a target's priority is to another's, and for an NTM how it uses its
  memory (Fig. 17: :mod:`ntm_fast.train.sort_analysis`).

Each setting reports cost in bits per sequence, bit errors per sequence, the per-bit error
rate (thresholding the output at 1/2) and the share of sequences without a bit error, on
fresh sequences from a fixed seed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import CheckpointError, load_model
from .config import UserError
from .objective import LN2
from .rundir import file_error, write_json
from .sort_analysis import analyse_sort_memory_use, priority_gap_errors
from .tasks import (
    Batch,
    NGramTask,
    PrioritySortTask,
    RepeatCopyTask,
    Task,
    make_task,
    split_training_only,
    task_options,
)

_ASSOC_ITEMS = (6, 8, 10, 12, 15, 20)
_SORT_SPACINGS = (0.1, 0.05, 0.03)


def generalisation_settings(task_config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, full task config) for each evaluation setting of a task trained on
    ``task_config`` (which includes ``name``); training sizes not varied are kept, training-only
    settings (copy's zero-vector emphasis) dropped."""
    base = split_training_only(task_config)[0]
    name = base.pop("name")
    if name == "copy":
        rows = [(f"length {n}", {"min_length": n, "max_length": n}) for n in (10, 20, 30, 50, 120)]
    elif name == "repeat_copy":
        L, K = base["max_length"], base["max_repeats"]
        rows = [
            (f"length {L}, {K} repeats", {"min_length": L, "max_length": L,
                                          "min_repeats": K, "max_repeats": K}),
            (f"length {2 * L}, {K} repeats", {"min_length": 2 * L, "max_length": 2 * L,
                                              "min_repeats": K, "max_repeats": K}),
            (f"length {L}, {2 * K} repeats", {"min_length": L, "max_length": L,
                                              "min_repeats": 2 * K, "max_repeats": 2 * K}),
        ]  # fmt: skip
    elif name == "associative_recall":
        rows = [(f"{n} items", {"min_items": n, "max_items": n}) for n in _ASSOC_ITEMS]
    elif name == "ngrams":
        rows = [(f"{base['length']} bits", {})]
    elif base.get("spacing"):  # trained on spaced priorities: that setting alone
        rows = [("training distribution", {})]
    else:
        rows = [("training distribution", {})] + [
            (f"priorities {gap} apart", {"spacing": gap})
            for gap in _SORT_SPACINGS
            if gap * (base.get("inputs", 20) - 1) <= 2
        ]
    return [(label, {"name": name, **base, **over}) for label, over in rows]


def build_task(task_config: dict[str, Any], seed: int) -> Task:
    cfg = dict(task_config)
    return make_task(cfg.pop("name"), seed, **cfg)


@torch.no_grad()
def score(model: torch.nn.Module, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-sequence cost (bits), bit errors and number of scored bits, and the `(T, B, C)`
    map of wrong output bits on the scored steps."""
    logits = model(batch.inputs)[0]
    ce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, batch.targets, reduction="none"
    ).sum(-1)
    wrong_bits = ((logits > 0).float() != batch.targets).float() * batch.mask.unsqueeze(-1)
    m = batch.mask
    cost = (ce * m).sum(0) / LN2
    return cost, wrong_bits.sum((0, 2)), m.sum(0) * batch.targets.shape[-1], wrong_bits


def repeat_copy_split(wrong_bits: Tensor, batch: Batch, bits: int) -> tuple[float, float, float]:
    """Repeat copy's errors apart (the paper: beyond the training range the copies can stay
    right while the end marker fails): wrong copy bits (channels ``0..bits-1`` of the copy
    steps), their number, and the sequences whose end-marker channel is right on every
    scored step (1 at the end, 0 before)."""
    copying = batch.mask.bool() & (batch.targets[..., bits] == 0)
    copy_wrong = float(wrong_bits[..., :bits][copying].sum())
    marker_right = float((wrong_bits[..., bits].sum(0) == 0).sum())
    return copy_wrong, float(copying.sum()) * bits, marker_right


def _checkpoint_path(checkpoint: str | os.PathLike[str]) -> Path:
    path = Path(checkpoint)
    return path / "checkpoint.pt" if path.is_dir() else path


def default_json_path(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    memory_slots: int | None = None,
) -> Path:
    """Where :func:`evaluate` writes: ``out``, else eval.json (eval-slots<N>.json with
    ``memory_slots``) beside the checkpoint. ``out`` naming a directory is a
    :class:`UserError` (it must be the JSON file's path)."""
    if out is not None:
        if Path(out).is_dir():
            raise UserError(f"--out {out}: is a directory; give the JSON file's path")
        return Path(out)
    name = "eval.json" if memory_slots is None else f"eval-slots{memory_slots}.json"
    return _checkpoint_path(checkpoint).parent / name


def write_result(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write an evaluation as strict JSON (non-finite numbers as null), atomically; a failed
    write (read-only or full disk) is a :class:`UserError` naming the file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_json(path, {k: v for k, v in result.items() if k != "json"})
    except OSError as exc:
        raise file_error(path, "write the evaluation", exc) from None


def evaluate(
    checkpoint: str | Path,
    *,
    batches: int = 4,
    batch_size: int = 32,
    seed: int = 1234,
    device: str = "cpu",
    backend: str = "auto",
    out: str | Path | None = None,
    write: bool = True,
    memory_slots: int | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on its task's generalisation settings and return the result;
    with ``write`` also write it as JSON (to ``out``, default eval.json beside the
    checkpoint; its path is then ``result["json"]``). ``memory_slots``: run the NTM with that
    many slots instead of its own (:mod:`ntm_fast.memory_size`; a model trained on fewer,
    ``--train-memory-slots``, runs with its own number by default)."""
    path = _checkpoint_path(checkpoint)
    json_path = default_json_path(checkpoint, out, memory_slots) if write else None
    state, model = load_model(path, backend, memory_slots)
    dev = torch.device(device)
    model = model.to(dev).eval()
    try:
        settings = generalisation_settings(state["task_config"])
        tasks = [build_task(cfg, seed + i) for i, (_, cfg) in enumerate(settings)]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: task_config {state['task_config']}: {exc}") from None
    rows = []
    for (label, _), task in zip(settings, tasks, strict=True):
        cost = errors = nbits = exact = 0.0
        optimal = copy_wrong = copy_bits = marker_right = 0.0
        n = 0
        for _ in range(batches):
            if isinstance(task, NGramTask):
                bits, _ = task.sample_bits(batch_size)
                batch = task.to_batch(bits)
                optimal += float(task.optimal_cost(bits).sum())
            else:
                batch = task.sample(batch_size)
            batch = Batch(*(t.to(dev) for t in batch))
            c, e, b, wrong_bits = score(model, batch)
            if isinstance(task, RepeatCopyTask):
                split = repeat_copy_split(wrong_bits, batch, task.bits)
                copy_wrong, copy_bits, marker_right = (
                    a + v for a, v in zip((copy_wrong, copy_bits, marker_right), split, strict=True)
                )
            cost, errors, nbits = (
                cost + float(c.sum()),
                errors + float(e.sum()),
                nbits + float(b.sum()),
            )
            exact += float((e == 0).sum())
            n += batch_size
        row = {
            "setting": label,
            "bits_per_sequence": cost / n,
            "bit_errors_per_sequence": errors / n,
            "bit_error_rate": errors / max(nbits, 1.0),
            # one sequence lost or every sequence a little wrong: the mean cannot tell
            "sequences_exact": exact / n,
            "sequences": n,
        }
        if isinstance(task, NGramTask):
            row["optimal_bits_per_sequence"] = optimal / n
        if isinstance(task, RepeatCopyTask):
            row["copy_bit_error_rate"] = copy_wrong / max(copy_bits, 1.0)
            row["end_marker_right"] = marker_right / n
        rows.append(row)
    result = {
        "checkpoint": str(path),
        "task": state["task_config"]["name"],
        "controller": state["config"].get("controller"),
        "step": state["step"],
        "sequences_trained": state["sequences"],
        "rows": rows,
    }
    options = task_options(state["task_config"])
    kept, training_only = split_training_only({"name": result["task"], **options})
    del kept["name"]
    if kept:  # tested on other than the task's defaults (--task-arg): say so
        result["task_options"] = kept
    if training_only:  # shaped the training stream only; the rows use the paper's data
        result["training_options"] = training_only
    if memory_slots is not None:
        result["memory_slots"] = memory_slots
    trained_slots = state["config"].get("train_memory_slots")
    if trained_slots:  # --train-memory-slots: run with the model's own slots unless told
        result["train_memory_slots"] = trained_slots
        result.setdefault("memory_slots", state["model_config"]["memory_slots"])
    if isinstance(tasks[0], PrioritySortTask):
        result["errors_by_gap"] = priority_gap_errors(
            model, tasks[0], sequences=batches * batch_size, seed=seed
        )
    if isinstance(tasks[0], PrioritySortTask) and hasattr(model, "layout"):
        use = analyse_sort_memory_use(model, tasks[0], seed=seed)
        result["memory_use"] = {
            "sequences": use.sequences, "write_head": use.write_head, "fit_r2": use.fit_r2,
            "read_head": use.read_head, "read_hits": use.read_hits, "read_order": use.read_order,
            "write_focus": use.write_focus.tolist(), "read_focus": use.read_focus.tolist(),
        }  # fmt: skip
    if json_path is not None:
        result["json"] = str(write_result(result, json_path))
    return result


def format_table(result: dict[str, Any]) -> str:
    """The evaluation as a printable (and markdown-compatible) table."""
    opt = any("optimal_bits_per_sequence" in r for r in result["rows"])
    split = any("copy_bit_error_rate" in r for r in result["rows"])
    head = "| setting | bits/seq | bit errors/seq | per-bit error | exact sequences |" + (
        " optimal bits/seq |" if opt else ""
    )
    head += " copy bits wrong | end marker right |" if split else ""
    options = ", ".join(f"{k}={v}" for k, v in result.get("task_options", {}).items())
    title = (f"{result['task']}{f' ({options})' if options else ''} / {result['controller']} after "
             f"{result['sequences_trained']:,} sequences ({result['step']:,} steps)")  # fmt: skip
    if "training_options" in result:
        trained = ", ".join(f"{k}={v}" for k, v in result["training_options"].items())
        title += f", trained with {trained}"
    if "memory_slots" in result:
        title += f", run with {result['memory_slots']} memory slots"
    if "train_memory_slots" in result:
        title += f" (trained with {result['train_memory_slots']})"
    lines = [
        title,
        head,
        "|" + "---|" * (5 + opt + 2 * split),
    ]
    for r in result["rows"]:
        line = (
            f"| {r['setting']} | {r['bits_per_sequence']:.3f} | "
            f"{r['bit_errors_per_sequence']:.2f} | {r['bit_error_rate']:.4f} | "
            f"{r['sequences_exact']:.1%} |"
        )
        if opt:
            o = r.get("optimal_bits_per_sequence", math.nan)
            line += f" {o:.3f} |"
        if split:
            line += f" {r['copy_bit_error_rate']:.4f} | {r['end_marker_right']:.0%} |"
        lines.append(line)
    if "errors_by_gap" in result:
        bins = [
            f"[{r['gap_from']:g}, {r['gap_to']:g}) {r['bit_errors_per_output']:.3f}"
            f" ({r['share']:.0%})"
            for r in result["errors_by_gap"]
        ]
        lines.append("bit errors per output vector by its priority's gap to the nearest other: "
                     + ", ".join(bins))  # fmt: skip
    use = result.get("memory_use")
    if use:
        lines.append(
            f"memory use (Fig. 17, {use['sequences']} sequences): write head {use['write_head']}'s "
            f"locations ~ linear in priority, R² {use['fit_r2']:.3f}; read head "
            f"{use['read_head']} reads where the target was written at "
            f"{use['read_hits']:.1%} of output steps, in order (|rank correlation|) "
            f"{use['read_order']:.2f}"
        )
    return "\n".join(lines)
