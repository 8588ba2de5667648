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

from . import distributed
from .checkpoint import CheckpointError
from .cli_train_args import add_train_arguments, given_config
from .cli_types import positive_int
from .config import TrainConfig, UserError
from .evaluate import default_json_path, evaluate, format_table, write_result
from .plotting import plot_runs
from .rundir import describe_os_error, dumps
from .stages import train
from .stopping import EXIT_CODES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ntm-fast", description="Train, evaluate and plot Neural Turing Machines."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on one of the paper's tasks")
    add_train_arguments(t)

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


def _train(args: argparse.Namespace) -> int:
    given = given_config(args)
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
