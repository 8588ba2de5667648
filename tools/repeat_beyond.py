"""How many repeats a trained repeat-copy network copies beyond its training range.

The paper (Fig. 8): asked for 20 repeats, its NTM keeps copying "fairly accurately" while
the end marker fails. ``ntm-fast eval`` gives one number for 10 x 20; this tool splits it:

* by the number of repeats asked for (``--max-repeats``): the copy-bit error over all K
  repeats for K = 10 .. max, and the largest K copied within ``--within`` (default 1%);
* ``--per-repeat K``: the copy-bit error of each repeat of a length x K sequence, and with
  ``--count-as K2`` the same sequences with the count input of K2 repeats (the targets stay
  K repeats): whether the out-of-range count input, not the counting, breaks the copy;
* ``--marker K``: when the end marker of a length x K sequence fires, in repeats from the
  right step (how many sequences at each offset): a whole number of repeats early is a
  miscount, a fraction a marker that does not wait for the end of a repeat; with
  ``--count-as K2``, told K2 repeats (on time when told K + 1: the held count drifts by one).

Copy bits only (channels ``0..bits-1`` of the copy steps); the end marker is ``ntm-fast
eval``'s "marker" column. Sequences have one length (``--length``) so repeat r is steps
``L+1+r*L .. L+(r+1)*L`` for all of them.

    python -m tools.repeat_beyond docs/checkpoints/repeat-copy-lstm-seed*
    python -m tools.repeat_beyond docs/checkpoints/repeat-copy-lstm-seed4 \
        --per-repeat 20 --count-as 12
    python -m tools.repeat_beyond docs/checkpoints/repeat-copy-lstm-seed* --length 20 --marker 10
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ntm_fast.train.checkpoint import load_model
from ntm_fast.train.evaluate import build_task
from ntm_fast.train.tasks import Batch


def sample(
    task_config: dict[str, Any], length: int, repeats: int, sequences: int, seed: int
) -> Batch:
    """``sequences`` repeat-copy sequences of exactly ``length`` x ``repeats``, with the
    checkpoint's count normalisation (the training range's, as a trained net sees it)."""
    if task_config.get("name") != "repeat_copy":
        got = task_config.get("name")
        raise ValueError(f"task: expected a repeat_copy checkpoint, got {got!r}")
    if length < 1 or repeats < 1 or sequences < 1:
        got = f"{length}, {repeats}, {sequences}"
        raise ValueError(f"length, repeats, sequences: expected >= 1, got {got}")
    config = dict(task_config, min_length=length, max_length=length,
                  min_repeats=repeats, max_repeats=repeats)  # fmt: skip
    return build_task(config, seed).sample(sequences)


@torch.no_grad()
def per_repeat_errors(
    model: nn.Module, batch: Batch, length: int, repeats: int, bits: int
) -> list[float]:
    """Share of wrong copy bits in each of the ``repeats`` repeats (outputs thresholded at 0)."""
    wrong = (model(batch.inputs)[0][..., :bits] > 0).float() != batch.targets[..., :bits]
    first = length + 1
    return [float(wrong[first + r * length : first + (r + 1) * length].float().mean())
            for r in range(repeats)]  # fmt: skip


def with_count_input(batch: Batch, task_config: dict[str, Any], length: int, count: int) -> Batch:
    """The batch with its count input (channel ``bits+1`` at the delimiter step) set to that
    of ``count`` repeats; targets unchanged."""
    task = build_task(task_config, 0)  # its normalise(): the checkpoint's count_mean and std
    inputs = batch.inputs.clone()
    inputs[length, :, task.bits + 1] = task.normalise(torch.tensor(count))
    return batch._replace(inputs=inputs)


@torch.no_grad()
def marker_offsets(model: nn.Module, batch: Batch, length: int, bits: int) -> list[float | None]:
    """For each sequence, when the end marker (channel ``bits``) first fires after the
    delimiter, in repeats from the right step (the target's): -1.0 = one whole repeat early;
    None where it never fires."""
    fired = model(batch.inputs)[0][length + 1 :, :, bits] > 0
    right = batch.targets[length + 1 :, :, bits].argmax(0)
    return [(float(fired[:, b].float().argmax() - right[b]) / length if fired[:, b].any()
             else None) for b in range(fired.shape[1])]  # fmt: skip


def errors_by_repeats(
    model: nn.Module,
    task_config: dict[str, Any],
    length: int,
    repeat_counts: list[int],
    sequences: int,
    seed: int,
) -> list[float]:
    """Copy-bit error over all K repeats for each K in ``repeat_counts`` (fresh sequences
    per K: seed + K)."""
    bits = task_config["bits"]
    out = []
    for k in repeat_counts:
        batch = sample(task_config, length, k, sequences, seed + k)
        out.append(sum(per_repeat_errors(model, batch, length, k, bits)) / k)
    return out


def largest_within(repeat_counts: list[int], errors: list[float], within: float) -> int | None:
    """The largest K such that every K' <= K in ``repeat_counts`` is copied within ``within``
    (None if the first is not)."""
    best = None
    for k, e in zip(repeat_counts, errors, strict=True):
        if e > within:
            break
        best = k
    return best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="repeat-copy run directories or checkpoint.pt")
    p.add_argument("--length", type=int, default=10)
    p.add_argument("--max-repeats", type=int, default=20)
    p.add_argument("--sequences", type=int, default=64)
    p.add_argument("--within", type=float, default=0.01, help="copy-bit error counted as copied")
    p.add_argument("--per-repeat", type=int, metavar="K", help="each repeat's errors, length x K")
    p.add_argument("--count-as", type=int, metavar="K2",
                   help="with --per-repeat or --marker: K2's count input")  # fmt: skip
    p.add_argument("--marker", type=int, metavar="K", help="when the end marker fires, length x K")
    p.add_argument("--seed", type=int, default=4321)
    a = p.parse_args(argv)
    if a.count_as is not None and a.per_repeat is None and a.marker is None:
        p.error("--count-as: needs --per-repeat K or --marker K (the sequences it re-counts)")
    if a.marker is not None and a.per_repeat is not None:
        p.error("--marker: a table of its own; leave out --per-repeat")
    if a.max_repeats < 10:
        p.error(f"--max-repeats: expected >= 10 (the table starts at 10), got {a.max_repeats}")
    torch.set_num_threads(1)
    counts = list(range(10, a.max_repeats + 1))
    if a.per_repeat is None and a.marker is None:
        print("copy-bit error (%) over all K repeats, length", a.length, "| K =", *counts)
    for ck in a.checkpoints:
        path = Path(ck) / "checkpoint.pt" if Path(ck).is_dir() else Path(ck)
        state, model = load_model(path, "auto")
        model.eval()
        config = state["task_config"]
        name = path.parent.name
        if a.marker is not None:
            batch = sample(config, a.length, a.marker, a.sequences, a.seed)
            if a.count_as is not None:
                batch = with_count_input(batch, config, a.length, a.count_as)
            offsets = Counter(o if o is None else round(o, 1) for o in
                              marker_offsets(model, batch, a.length, config["bits"]))  # fmt: skip
            shown = sorted(offsets.items(), key=lambda kv: (kv[0] is None, kv[0] or 0.0))
            cells = [f"{'never' if o is None else f'{o:+g}'}: {n}" for o, n in shown]
            given = f" (count input {a.count_as})" if a.count_as is not None else ""
            where = f"end marker of {a.length} x {a.marker}{given}, repeats from the right step:"
            print(name, where, ", ".join(cells))
            continue
        if a.per_repeat is None:
            errs = errors_by_repeats(model, config, a.length, counts, a.sequences, a.seed)
            best = largest_within(counts, errs, a.within)
            print(
                name,
                " ".join(f"{100 * e:5.2f}" for e in errs),
                "| copied within",
                f"{100 * a.within:g}%: up to",
                best if best is not None else "-",
                "repeats",
            )
            continue
        batch = sample(config, a.length, a.per_repeat, a.sequences, a.seed)
        if a.count_as is not None:
            batch = with_count_input(batch, config, a.length, a.count_as)
        errs = per_repeat_errors(model, batch, a.length, a.per_repeat, config["bits"])
        label = f"count input {a.count_as}" if a.count_as is not None else "as sampled"
        print(name, f"({label}):", " ".join(f"{100 * e:4.1f}" for e in errs))


if __name__ == "__main__":
    main()
