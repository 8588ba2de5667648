"""Copy's stability, measured three ways (docs/results/copy-blanked-vectors.md).

* ``--curve RUN...``: from a run's log.csv, the sequences (and seconds) to first fall below 1,
  0.1 and 0.05 bits, and the logged windows above 1 bit after the first below 0.1 — the
  task issue's "never back above 1 bit" — with the largest;
* ``--fair N CHECKPOINT...``: how many of N fresh sequences of the paper's distribution (fair
  bits, the checkpoint's lengths; training-only settings dropped) the network scores above
  1 bit, and how many it does not copy exactly;
* ``--windows RUN...``: replays the run's training stream through those windows above 1 bit
  and lists the sequences in them the final network still scores above ``--threshold``
  bits, with the positions of their all-zero data vectors.

    python -m tools.copy_stream --curve runs/copy-lstm-seed0-*
    python -m tools.copy_stream --fair 30000 docs/checkpoints/copy-lstm-seed*
    python -m tools.copy_stream --windows runs/copy-lstm-seed0-*
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import torch

from ntm_fast.train.checkpoint import load_model
from ntm_fast.train.distributed import data_seed
from ntm_fast.train.evaluate import build_task, score
from ntm_fast.train.tasks import Batch, split_training_only


def _log(run: str | Path) -> list[dict[str, float]]:
    with open(Path(run) / "log.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def curve(run: str | Path) -> dict[str, Any]:
    """{"first": {1.0: (sequences, seconds) or None, 0.1: ..., 0.05: ...}, "after": windows
    logged from the first below 0.1 on, "above_1": those above 1 bit, "largest": their
    largest cost (None before 0.1), "end": the last window's cost}."""
    rows = _log(run)
    first = {}
    for level in (1.0, 0.1, 0.05):
        hit = next((r for r in rows if r["cost_bits"] < level), None)
        first[level] = None if hit is None else (int(hit["sequences"]), hit["seconds"])
    start = next((i for i, r in enumerate(rows) if r["cost_bits"] < 0.1), len(rows))
    after = [r["cost_bits"] for r in rows[start:]]
    return {"first": first, "after": len(after), "above_1": sum(c > 1 for c in after),
            "largest": max(after) if after else None, "end": rows[-1]["cost_bits"]}  # fmt: skip


def _zero_positions(batch: Batch, j: int, bits: int) -> list[int]:
    length = int(batch.mask[:, j].sum())
    return (batch.inputs[:length, j, :bits].sum(-1) == 0).nonzero().flatten().tolist()


@torch.no_grad()
def fair_failures(model: torch.nn.Module, task_config: dict[str, Any], sequences: int,
                  seed: int = 777, batch_size: int = 100) -> tuple[int, int, int]:  # fmt: skip
    """(sequences above 1 bit, sequences not copied exactly, sequences) of ``model`` on
    fresh sequences of ``task_config``'s task without its training-only settings."""
    task = build_task(split_training_only(task_config)[0], seed)
    above = inexact = n = 0
    while n < sequences:
        cost, errors, _, _ = score(model, task.sample(min(batch_size, sequences - n)))
        above, inexact = above + int((cost > 1).sum()), inexact + int((errors > 0).sum())
        n += cost.numel()
    return above, inexact, n


@torch.no_grad()
def spike_sequences(run: str | Path, threshold: float = 5.0) -> list[dict[str, Any]]:
    """The sequences of the windows above 1 bit (after the first below 0.1) that the run's
    final network scores above ``threshold`` bits: window, step, length, zero vectors, bits.
    Replays rank 0's stream from the run's seed (a data-parallel run's other ranks not)."""
    rows = _log(run)
    state, model = load_model(Path(run))
    model.eval()
    config, task_config = state["config"], state["task_config"]
    start = next((i for i, r in enumerate(rows) if r["cost_bits"] < 0.1), len(rows))
    windows = {int(r["step"]) for r in rows[start:] if r["cost_bits"] > 1}
    if not windows:
        return []
    task = build_task(task_config, data_seed(config["seed"], 0))
    every, found = config["log_every"], []
    for step in range(1, max(windows) + 1):
        batch = task.sample(config["batch_size"])
        window = -(-step // every) * every
        if window not in windows:
            continue
        cost = score(model, batch)[0]
        for j in (cost > threshold).nonzero().flatten().tolist():
            found.append({"window": window, "step": step, "length": int(batch.mask[:, j].sum()),
                          "zero_vectors": _zero_positions(batch, j, task.bits),
                          "bits": float(cost[j])})  # fmt: skip
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curve", nargs="+", metavar="RUN", help="run directories to summarise")
    p.add_argument("--fair", type=int, metavar="N", help="sequences per checkpoint")
    p.add_argument("--windows", nargs="+", metavar="RUN", help="runs whose spikes to replay")
    p.add_argument("--threshold", type=float, default=5.0, help="--windows: bits of one sequence")
    p.add_argument("checkpoints", nargs="*", help="--fair: checkpoints or run directories")
    a = p.parse_args()
    torch.set_num_threads(1)
    for run in a.curve or []:
        c = curve(run)
        firsts = ", ".join(f"< {k:g}: {v[0]:,} seq ({v[1]:.1f} s)" if v else f"< {k:g}: never"
                           for k, v in c["first"].items())  # fmt: skip
        largest = "" if c["largest"] is None else f" (largest {c['largest']:.2f})"
        print(f"{run}: first {firsts}; windows > 1 bit after < 0.1: {c['above_1']} of "
              f"{c['after']}{largest}; end {c['end']:.4f} bits")  # fmt: skip
    if a.fair:
        for path in a.checkpoints:
            state, model = load_model(path)
            above, inexact, n = fair_failures(model.eval(), state["task_config"], a.fair)
            print(f"{path}: of {n:,} fair-bit sequences, {above} above 1 bit, {inexact} not "
                  "copied exactly")  # fmt: skip
    for run in a.windows or []:
        for s in spike_sequences(run, a.threshold):
            print(f"{run}: window {s['window']}, step {s['step']}: length {s['length']}, "
                  f"all-zero vectors at {s['zero_vectors']}, {s['bits']:.1f} bits")  # fmt: skip


if __name__ == "__main__":
    main()
