"""The ``ntm-fast train`` options, and the TrainConfig values of those a user gave.

One home for the training command's flags: ``cli.py`` builds the parser around them, and
``given_config`` maps what was typed (not argparse's defaults) onto TrainConfig fields, so a
preset's default stays the default unless a flag names another value.
"""

from __future__ import annotations

import argparse
from typing import Any

from .cli_types import (
    finite_float,
    key_value,
    non_negative_int,
    positive_float,
    positive_int,
    task_name,
)
from .config_checks import LOSS_TERMS, PENALTIES
from .presets import CONTROLLERS
from .schedule import LR_SCHEDULES
from .tasks import TASKS

#: Model size overrides: each flag's dest is its model config key (small or custom models).
_MODEL_FLAGS = ("memory_slots", "memory_width", "controller_size", "hidden_size")

_REGULARISERS = {  # flag -> what X does
    "weight_decay": "shrink the controller's weight matrices by lr x X each step",
    "write_penalty": "add X x the memory's squared change over the target phase to the cost",
    "read_penalty": "add X x the squared change the read heads see over the target phase",
    "gate_penalty": "add X x the write heads' interpolation gate over the target phase",
    "read_entropy_penalty": "add X x the read heads' weighting entropy over the target phase",
    "write_follow_penalty": "add X x each write weighting's cross-entropy against the read "
    "weighting of the step before (write where you just read)",
}
_REGULARISER_DOCS = {
    "weight_decay": "copy-weight-decay",
    "read_entropy_penalty": "ngrams-feedforward-tried",
    "write_follow_penalty": "ngrams-write-follows-read",
}
assert set(_REGULARISERS) == {"weight_decay", *PENALTIES}


def add_train_arguments(t: argparse.ArgumentParser) -> None:
    """Add the ``train`` subcommand's arguments to its parser."""
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
    t.add_argument(
        "--clip-norm-first",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="clip the global gradient norm before the element-wise clip, keeping the "
        "gradient's direction when it explodes (docs/results/ngrams-write-follows-read.md)",
    )
    for flag, what in _REGULARISERS.items():
        doc = _REGULARISER_DOCS.get(flag, "copy-write-penalty")
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


_TRAIN_FIELDS = {  # CLI dest -> TrainConfig field, for the flags without a fixed default
    **{f: f for f in ("steps", "minutes", "stop_cost", "batch_size", "lr", "optimizer", "seed",
                      "clip_norm", "clip_spike", "clip_norm_first", "weight_decay", *LOSS_TERMS,
                      "penalty_from", "lr_schedule", "train_memory_slots",
                      "init_from", "finish_steps", "device", "backend", "checkpoint_every",
                      "log_every", "threads")},
    "warmup": "warmup_steps",
}  # fmt: skip


def given_config(args: argparse.Namespace) -> dict[str, Any]:
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
