"""The ``ntm-fast`` command: ``train``, ``eval`` and ``plot``.

Exit codes: 0 success; 2 bad arguments (argparse); 1 any other error (bad or corrupt
checkpoint, bad value, a run directory in use, NaN/inf cost, a file not written or read),
one ``ntm-fast: error: ...`` line without a traceback; 130 after Ctrl-C and 143 after
SIGTERM (both once the last whole step's checkpoint is written; ``--resume`` continues).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from . import distributed
from .checkpoint import CheckpointError
from .cli_types import (
    finite_float,
    key_value,
    non_negative_int,
    positive_float,
    positive_int,
    task_name,
)
from .config import TrainConfig, UserError
from .config_checks import LOSS_TERMS, PENALTIES
from .evaluate import default_json_path, evaluate, format_table, write_result
from .plotting import plot_runs
from .presets import CONTROLLERS
from .rundir import describe_os_error, dumps
from .schedule import LR_SCHEDULES
from .stages import train
from .stopping import EXIT_CODES
from .tasks import TASKS

#: Model size overrides: each flag's dest is its model config key (small or custom models).
_MODEL_FLAGS = ("memory_slots", "memory_width", "controller_size", "hidden_size")

_REGULARISERS = {  # flag -> what X does
    "weight_decay": "shrink the controller's weight matrices by lr x X each step",
    "write_penalty": "add X x the memory's squared change over the target phase to the cost",
    "read_penalty": "add X x the squared change the read heads see over the target phase",
    "gate_penalty": "add X x the write heads' interpolation gate over the target phase",
}
assert set(_REGULARISERS) == {"weight_decay", *PENALTIES}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ntm-fast", description="Train, evaluate and plot Neural Turing Machines."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on one of the paper's tasks")
    t.add_argument("task", type=task_name, help=f"one of {', '.join(sorted(TASKS))}")
    t.add_argument(
        "--controller",
        choices=CONTROLLERS,
        default="lstm",
        help="NTM controller, or 'baseline' for the plain deep LSTM (Table 3)",
    )
    t.add_argument("--steps", type=positive_int, help="optimiser steps (default: preset's)")
    t.add_argument("--minutes", type=positive_float, help="stop after this wall-clock time")
    t.add_argument("--stop-cost", type=float, help="stop once the logged cost (bits/seq) <= X")
    t.add_argument(
        "--batch-size",
        type=positive_int,
        help="default: the preset's CPU default; under torchrun: per process (rank)",
    )
    t.add_argument("--lr", type=positive_float, help="learning rate (default: preset's)")
    t.add_argument(
        "--optimizer", choices=("rmsprop", "adam"), help="rmsprop is Graves's (default: preset's)"
    )
    t.add_argument(
        "--clip-norm",
        type=float,
        help="also clip the global gradient norm to X (0: off; default: preset's)",
    )
    t.add_argument(
        "--clip-spike",
        type=float,
        help="clip the global gradient norm to X times its running mean (X > 1; 0: off; "
        "default: preset's)",
    )
    for flag, what in _REGULARISERS.items():
        doc = "copy-weight-decay" if flag == "weight_decay" else "copy-write-penalty"
        help = f"{what} (0: off; default: preset's; docs/results/{doc}.md)"
        t.add_argument(f"--{flag.replace('_', '-')}", type=float, metavar="X", help=help)
    t.add_argument("--marker-weight", type=float, metavar="X",
                   help="repeat copy: the end marker's cross-entropy counts X times in the loss "
                   "(1: the paper's; docs/results/repeat-copy-marker-weight.md)")  # fmt: skip
    t.add_argument("--controller-reset", type=float, metavar="P",
                   help="P of the batches reset the LSTM controller's state at a target step "
                   "(docs/results/repeat-copy-controller-reset.md)")  # fmt: skip
    t.add_argument("--penalty-from", "--write-penalty-from", type=int, dest="penalty_from",
                   help="the penalties', marker weight's and controller reset's first step "
                   "(default: preset's)")  # fmt: skip
    t.add_argument(
        "--warmup", type=int, help="linear learning-rate warm-up steps (default: preset's)"
    )
    t.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help="after warm-up: constant, or cosine decay to 0 at --steps (default: preset's)",
    )
    t.add_argument("--seed", type=int, help="default: 0")
    t.add_argument("--device", help="cpu or cuda[:N] (default: cpu)")
    t.add_argument(
        "--backend",
        choices=("auto", "native", "triton", "reference"),
        help="memory-op kernels (default: auto)",
    )
    t.add_argument("--out", help="run directory (default: runs/TASK-CONTROLLER-seedS-TIME)")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out exactly; flags that would change its model, task, "
        "seed or optimiser are refused (see docs/training-continue.md)",
    )
    t.add_argument("--checkpoint-every", type=positive_int, help="steps (default: 500)")
    t.add_argument("--log-every", type=positive_int, help="steps (default: 50)")
    t.add_argument(
        "--threads",
        type=positive_int,
        help="torch CPU threads (default: 1, the fastest for these small ops)",
    )
    t.add_argument("--heads", type=positive_int, help="read heads = write heads (override)")
    for flag in _MODEL_FLAGS:
        t.add_argument("--" + flag.replace("_", "-"), type=positive_int, help="model size override")
    t.add_argument(
        "--forget-bias",
        type=finite_float,
        help="added to the LSTM controller's forget-gate biases at initialisation (default: "
        "preset's; docs/results/copy-forget-bias.md)",
    )
    t.add_argument(
        "--memory-init",
        choices=("per_slot", "shared"),
        help="the NTM's learned initial memory: a row per slot, or one row shared by every "
        "slot (default: preset's; docs/training-memory.md)",
    )
    t.add_argument(
        "--train-memory-slots",
        type=non_negative_int,
        help="train on a memory of this many slots, fewer than the model's; evaluated with "
        "the model's (needs --memory-init shared; 0: the model's; default: preset's; "
        "docs/training-memory.md)",
    )
    t.add_argument(
        "--finish-steps",
        type=non_negative_int,
        help="steps of the preset's finishing stage, run after the others from their weights "
        "(0: none; default: preset's; docs/training-continue.md)",
    )
    t.add_argument(
        "--no-phases",
        action="store_true",
        help="train at --lr, --lr-schedule and --batch-size throughout, without the preset's "
        "phases (where they change within the run; training.md)",
    )
    t.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start a new run from this checkpoint's model (file or run directory; same task "
        "and controller): its weights, with a fresh optimiser, step count and data stream "
        "(docs/training-continue.md)",
    )
    t.add_argument(
        "--task-arg",
        type=key_value,
        action="append",
        metavar="KEY=N",
        help="task setting override, e.g. max_length=10, or hold_delimiter=1 (copy, repeat "
        "copy: the delimiter flag held through the output; not the paper's layout), or "
        "zero_vector_percent=10 (copy: that share of training vectors blanked; "
        "evaluation uses fair bits), zero_vector_from=A, zero_vector_until=B (only "
        "training sequences A..B-1; the LSTM default: 10, 0, 5000); docs/results/copy.md; "
        "length_power=P (copy, repeat copy: training lengths drawn with P(L) ~ L^P)",
    )
    t.add_argument("--no-plots", action="store_true", help="skip the figures at the end")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument(
        "--dist-backend",
        help="under torchrun: process-group backend (default: nccl for CUDA tensors, gloo "
        "for CPU tensors; see docs/distributed.md)",
    )

    e = sub.add_parser(
        "eval",
        help="evaluate generalisation of a checkpoint (JSON + table)",
        description="Score a checkpoint on its task's generalisation settings (paper section "
        "4: e.g. copy lengths 10-120) on fresh sequences from a fixed seed; prints a table "
        "and writes it as JSON.",
    )
    e.add_argument("checkpoint", help="checkpoint.pt or its run directory")
    e.add_argument(
        "--batches", type=positive_int, default=4, help="batches per setting (default: 4)"
    )
    e.add_argument(
        "--batch-size", type=positive_int, default=32, help="sequences per batch (default: 32)"
    )
    e.add_argument(
        "--seed",
        type=int,
        default=1234,
        help="seed of the evaluation sequences (setting i uses seed + i; default: 1234)",
    )
    e.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    e.add_argument(
        "--backend",
        choices=("auto", "native", "triton", "reference"),
        default="auto",
        help="memory-op kernels (default: auto)",
    )
    e.add_argument(
        "--out", help="where to write the JSON (default: eval.json beside the checkpoint)"
    )
    e.add_argument(
        "--memory-slots",
        type=positive_int,
        help="run the NTM with this many memory slots (>= its trained number; needs a model "
        "trained with --memory-init shared; default: as trained)",
    )

    p = sub.add_parser("plot", help="learning curves of runs, output and memory-use figures")
    p.add_argument(
        "runs",
        nargs="+",
        help="run directories (one learning-curve plot for all; for two or more runs with an "
        "eval.json in each, also one generalisation plot)",
    )
    p.add_argument("--out", help="figure directory (default: RUN_DIR/figures of the first)")
    p.add_argument("--labels", nargs="+", help="legend labels, one per run")
    p.add_argument(
        "--smooth",
        type=int,
        default=1,
        metavar="N",
        help="each learning-curve point the mean of N logged windows (default 1)",
    )
    return parser


_TRAIN_FIELDS = {  # CLI dest -> TrainConfig field, for the flags without a fixed default
    **{f: f for f in ("steps", "minutes", "stop_cost", "batch_size", "lr", "optimizer", "seed",
                      "clip_norm", "clip_spike", "weight_decay", *LOSS_TERMS,
                      "penalty_from", "lr_schedule", "train_memory_slots",
                      "init_from", "finish_steps", "device", "backend", "checkpoint_every",
                      "log_every", "threads")},
    "warmup": "warmup_steps",
}  # fmt: skip


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig values of the flags given on the command line (not their defaults)."""
    given = {f: getattr(args, d) for d, f in _TRAIN_FIELDS.items() if getattr(args, d) is not None}
    model: dict[str, Any] = {}
    if args.heads:
        model.update(read_heads=args.heads, write_heads=args.heads)
    for key in (*_MODEL_FLAGS, "memory_init", "forget_bias"):
        if getattr(args, key) is not None:
            model[key] = getattr(args, key)
    if model:
        given["model_overrides"] = model
    if args.task_arg:
        given["task_overrides"] = dict(args.task_arg)
    if args.no_phases:
        given["phases"] = []
    return given


def _train(args: argparse.Namespace) -> int:
    given = _given(args)
    flags = dict(plots=not args.no_plots, progress=not args.no_progress)
    config = TrainConfig(task=args.task, controller=args.controller, out=args.out, **given,
                         **flags)  # fmt: skip
    summary = train(
        config,
        resume=args.resume,
        resume_overrides={**given, **flags},
        dist_backend=args.dist_backend,
    )
    if distributed.is_main():  # under torchrun: one summary, from rank 0
        print(dumps(summary))
    return EXIT_CODES.get(summary["reason"], 0)


def _eval(args: argparse.Namespace) -> int:
    json_path = default_json_path(args.checkpoint, args.out, args.memory_slots)
    result = evaluate(
        args.checkpoint, batches=args.batches, batch_size=args.batch_size, seed=args.seed,
        device=args.device, backend=args.backend, write=False,
        memory_slots=args.memory_slots,
    )  # fmt: skip
    try:
        print(format_table(result))  # the result is shown even if it cannot be saved
        sys.stdout.flush()
    except BrokenPipeError:  # `ntm-fast eval RUN | head`: the reader left; still save it
        _discard_stdout()
    write_result(result, json_path)
    print(f"wrote {json_path}", file=sys.stderr)
    return 0


def _plot(args: argparse.Namespace) -> int:
    if args.labels and len(args.labels) != len(args.runs):
        raise UserError(f"--labels: expected {len(args.runs)} labels, got {len(args.labels)}")
    if args.smooth < 1:
        raise UserError(f"--smooth: expected an int >= 1 (1: no smoothing), got {args.smooth}")
    for path in plot_runs(args.runs, out=args.out, labels=args.labels, smooth=args.smooth):
        print(path)
    return 0


def _discard_stdout() -> None:
    """Send the rest of stdout to /dev/null once its reader has gone, so that nothing (not
    even Python's flush at exit) fails on it again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ntm-fast``; returns the exit code."""
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("once", category=RuntimeWarning, module="ntm_fast")
    try:
        return {"train": _train, "eval": _eval, "plot": _plot}[args.command](args)
    except BrokenPipeError:  # stdout's reader left (`| head`): not an error of ours
        _discard_stdout()
        return 141  # what a shell reports for a writer ended by SIGPIPE
    except (UserError, CheckpointError) as exc:
        print(f"ntm-fast: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file we did not expect to fail: still one line, naming it
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ntm-fast: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
