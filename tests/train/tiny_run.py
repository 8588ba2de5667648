"""Tiny training runs for the robustness tests (a few steps take well under a second)."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from ntm_fast.train import TrainConfig, Trainer
from ntm_fast.train import checkpoint as ckpt

TINY = dict(memory_slots=8, memory_width=6, controller_size=16)
#: ``ntm-fast train copy`` flags for the same tiny run
CLI = ["--memory-slots", "8", "--memory-width", "6", "--controller-size", "16",
       "--task-arg", "max_length=3", "--batch-size", "4", "--lr", "0.003", "--seed", "1",
       "--optimizer", "adam", "--clip-norm", "0", "--clip-spike", "0",
       "--lr-schedule", "constant", "--backend", "reference",
       "--no-progress", "--no-plots"]  # fmt: skip


def tiny(out, **kw) -> TrainConfig:
    base = dict(task="copy", steps=6, batch_size=4, lr=3e-3, seed=1, out=str(out),
                model_overrides=dict(TINY), task_overrides={"max_length": 3},
                checkpoint_every=1000, log_every=2, plots=False, progress=False,
                backend="reference", optimizer="adam", clip_norm=0.0, clip_spike=0.0,
                lr_schedule="constant")  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def cli_repeat_copy(out: Path, capsys, *flags: str) -> tuple[str, dict]:
    """``ntm-fast train repeat_copy`` for 2 tiny steps with ``flags``: (what it printed, the
    configuration its checkpoint stores)."""
    from ntm_fast.train.cli import main

    args = [*CLI, "--task-arg", "max_repeats=2", "--steps", "2", "--finish-steps", "0", *flags,
            "--out", str(out)]  # fmt: skip
    assert main(["train", "repeat_copy", *args]) == 0
    printed = capsys.readouterr()
    return printed.out + printed.err, ckpt.load_checkpoint(out)["config"]


def flip_bytes_in_largest_tensor(path: Path, n: int = 64) -> str:
    """Invert ``n`` bytes in the middle of the largest tensor record of a torch.save zip (what
    a bad sector or a bad copy does); returns the record's name."""
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    at = info.header_offset
    name_len, extra_len = struct.unpack("<HH", raw[at + 26 : at + 30])
    start = at + 30 + name_len + extra_len + max(0, info.file_size // 2 - n // 2)
    for i in range(start, start + min(n, info.file_size)):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    return info.filename


def log_rows(run: Path) -> list[list[str]]:
    """log.csv rows without the header, without the timing columns."""
    lines = (run / "log.csv").read_text().splitlines()
    assert lines[0].startswith("step,sequences,cost_bits")
    return [line.split(",")[:4] for line in lines[1:]]


def resumed_and_straight(
    root: Path, task_overrides: dict, check: Callable[[Trainer], None] | None = None
) -> tuple[dict, dict]:
    """A tiny run stopped after 3 steps and resumed to 6, and one run straight to 6: their
    checkpoints. ``check`` sees the resumed trainer before it runs."""
    run, straight = root / "run", root / "straight"
    Trainer(tiny(run, steps=3, task_overrides=task_overrides)).run()
    Trainer(tiny(straight, steps=6, task_overrides=task_overrides)).run()
    resumed = Trainer(tiny(run, task_overrides=task_overrides), resume=True,
                      resume_overrides={"steps": 6})  # fmt: skip
    if check is not None:
        check(resumed)
    resumed.run()
    return ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight)


def same_weights(a: dict, b: dict) -> bool:
    """Two checkpoints hold bit-identical model weights."""
    return a["model"].keys() == b["model"].keys() and all(
        torch.equal(a["model"][k], b["model"][k]) for k in a["model"]
    )
