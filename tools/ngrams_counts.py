"""Where a trained N-grams network loses bits against the optimal estimator (eq. 10).

For every prediction of held-out sequences, the counts N1, N0 of ones and zeros seen so far
after the current five-bit context decide the optimal estimate (N1 + 1/2) / (N1 + N0 + 1).
This tool groups the network's predictions by those counts: their mean and spread beside the
optimal estimate (a biased estimator shows in the mean, an imprecise one in the spread), and
the excess cost (network minus optimal, bits) by how often the context had been seen.

    python -m tools.ngrams_counts docs/checkpoints/ngrams-*

Sequences come from the task's own generator at ``--seed`` (default 1234, ``ntm-fast
eval``'s), ``--sequences`` of them (default 1,000: the paper's validation set's size).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from ntm_fast.train.checkpoint import load_model
from ntm_fast.train.evaluate import build_task
from ntm_fast.train.objective import weighting_entropy
from ntm_fast.train.tasks.ngrams import NGramTask

#: (N1, N0) pairs reported; more observations land in few enough sequences to be noisy.
COUNTS = ((1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (3, 0), (2, 1), (2, 2), (6, 0), (3, 3))
#: Times seen before, 0 .. SEEN - 1, and SEEN for that many or more.
SEEN = 11
#: The times seen that ``excess_by_time`` compares across the sequence (each weighted alike,
#: so a window is not judged by how often its contexts had been seen).
TIME_SEEN = (1, 2, 3, 4, 5)
#: How many equal windows of the steps after the first context ``excess_by_time`` reports.
TIME_WINDOWS = 4


def context_ids(bits: torch.Tensor, context: int) -> torch.Tensor:
    """`(B, T)` the ``context`` bits before step t as an integer, the latest bit lowest (-1 for
    the first ``context`` steps, which have none)."""
    B, T = bits.shape
    ids = torch.full((B, T), -1, dtype=torch.long)
    ctx = torch.zeros(B, dtype=torch.long)
    for t in range(T):
        if t >= context:
            ids[:, t] = ctx
        ctx = (ctx * 2 + bits[:, t].long()) % (2**context)
    return ids


def context_counts(
    bits: torch.Tensor, context: int, groups: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, T)` N1 and N0: ones and zeros seen after the context of step t before step t
    (-1 for the first ``context`` steps, which have none). ``groups``: optional
    `(2**context,)` ints, the contexts that share a value pool their counts (default: each
    context its own)."""
    B, T = bits.shape
    groups = torch.arange(2**context) if groups is None else groups.unique(return_inverse=True)[1]
    ones, zeros = torch.zeros(B, 2**context), torch.zeros(B, 2**context)
    n1, n0 = torch.full((B, T), -1.0), torch.full((B, T), -1.0)
    rows, ids = torch.arange(B), context_ids(bits, context)
    for t in range(context, T):
        g = groups[ids[:, t]]
        n1[:, t], n0[:, t] = ones[rows, g], zeros[rows, g]
        ones[rows, g] += bits[:, t]
        zeros[rows, g] += 1 - bits[:, t]
    return n1, n0


def _bits(p: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Cost in bits of predicting 1 with probability ``p`` at each of ``bits``."""
    return -(bits * torch.log2(p) + (1 - bits) * torch.log2(1 - p))


def pooled_excess(bits: torch.Tensor, context: int, groups: torch.Tensor) -> torch.Tensor:
    """`(B,)` bits per sequence that eq. (10)'s estimator loses when the contexts sharing a
    value of ``groups`` pool their counts: the price of a table that keeps one row of
    counts for each such group and nothing else."""

    def cost(n1: torch.Tensor, n0: torch.Tensor) -> torch.Tensor:
        return _bits(torch.where(n1 < 0, 0.5, (n1 + 0.5) / (n1 + n0 + 1)), bits).sum(1)

    return cost(*context_counts(bits, context, groups)) - cost(*context_counts(bits, context))


def analyse(
    model: torch.nn.Module, task: NGramTask, sequences: int = 1000, batch: int = 100
) -> dict[str, Any]:
    """``{"counts": {(n1, n0): (optimal, mean, sd, n)}, "excess_by_seen": [bits per
    sequence for contexts seen 0, 1, .., SEEN+ times], "excess_by_time": [bits per
    prediction in each of TIME_WINDOWS windows of the sequence, at contexts seen TIME_SEEN
    times, each count weighted alike], "excess": bits per sequence, "excess_se": its
    standard error over the sequences}``. A network whose counts come back as precisely late
    in a sequence as early has a flat ``excess_by_time`` (a fixed noise on eq. (10) does);
    a rising one loses precision as the memory fills, whatever the context's own count."""
    preds, n1s, n0s, excess = [], [], [], []
    for start in range(0, sequences, batch):
        bits, _ = task.sample_bits(min(batch, sequences - start))
        with torch.no_grad():
            logits = model(task.to_batch(bits).inputs)[0][..., 0].T.float()
        cost = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, bits, reduction="none"
        ) / math.log(2)
        p = task.optimal_probabilities(bits)
        optimal = _bits(p, bits)
        n1, n0 = context_counts(bits, task.context)
        preds.append(torch.sigmoid(logits))
        n1s.append(n1)
        n0s.append(n0)
        excess.append(cost - optimal)
    pred, n1, n0, ex = (torch.cat(x) for x in (preds, n1s, n0s, excess))
    counts = {}
    for a, b in COUNTS:
        v = pred[(n1 == a) & (n0 == b)]
        sd = float(v.std()) if v.numel() > 1 else math.nan
        counts[(a, b)] = ((a + 0.5) / (a + b + 1), float(v.mean()), sd, v.numel())
    seen = (n1 + n0).clamp(max=SEEN)
    by_seen = [float(ex[seen == k].sum()) / len(ex) for k in range(-1, SEEN + 1)]
    per_sequence = ex.sum(1)
    return {"counts": counts, "excess_by_seen": by_seen[1:], "first_bits": by_seen[0],
            "excess_by_time": _excess_by_time(ex, n1 + n0, task.context),
            "excess": float(per_sequence.mean()),
            "excess_se": float(per_sequence.std() / len(ex) ** 0.5)}  # fmt: skip


def _excess_by_time(excess: torch.Tensor, seen: torch.Tensor, context: int) -> list[float]:
    """Mean excess per prediction (bits) in TIME_WINDOWS equal windows of the steps from
    ``context`` on, averaged over the counts TIME_SEEN (a count absent from a window is left
    out of its average)."""
    windows = torch.arange(excess.shape[1] - context).tensor_split(TIME_WINDOWS)
    out = []
    for steps in windows:
        ex, n = excess[:, steps + context], seen[:, steps + context]
        means = [ex[n == k].mean() for k in TIME_SEEN if (n == k).any()]
        out.append(float(torch.stack(means).mean()) if means else math.nan)
    return out


def read_spread(model: torch.nn.Module, task: NGramTask, sequences: int = 200) -> dict[str, Any]:
    """How an NTM's first read head addresses the memory after the first ``context`` steps:
    ``{"entropy": mean entropy of its weighting (nats; 0 = one row, ln N = uniform),
    "largest": mean largest weight, "context_accuracy": how often the nearest mean weighting
    is the step's context's (``_nearest_centroid_accuracy``; "context_accuracy_by_time": in
    each window of the sequence), "gate": mean interpolation gate, "gamma": median
    sharpening, "table_rows": how many rows the 2^context contexts read from (each
    context's most common row of largest weight, counted once),
    "table_share": the share of steps whose largest weight is on their context's row,
    "table_excess": bits per sequence above eq. (10) of the estimator whose contexts pool
    their counts wherever they share that row}``.
    A network that keeps a row per context reads from 2^context rows at a share near 1 and
    a table_excess of 0; a table_excess far above the network's own excess says the largest
    weight's row is not all it reads: the rest of the weighting tells its contexts apart.
    Over the committed feedforward NTMs the spread rises with the excess
    (docs/results/ngrams-feedforward.md)."""
    bits, _ = task.sample_bits(sequences)
    with torch.no_grad():
        trace = model(task.to_batch(bits).inputs, trace=True)[-1]
    w = trace.read_weightings[task.context :, :, 0]  # (T, B, N)
    entropy = weighting_entropy(w)
    after = slice(task.context, None)
    row, ctx = w.argmax(-1), context_ids(bits, task.context).T[after]  # step t's context
    # each context's modal row; a context not seen keeps a value of its own (N + context)
    modal, on_modal = torch.arange(2**task.context) + w.shape[-1], 0
    seen = ctx.unique()
    for k in seen:
        counts = row[ctx == k].bincount()
        modal[k] = counts.argmax()
        on_modal += int(counts.max())
    named, named_by_time = _nearest_centroid_accuracy(w, ctx)
    return {"entropy": float(entropy.mean()), "largest": float(w.amax(-1).mean()),
            "context_accuracy": named, "context_accuracy_by_time": named_by_time,
            "gate": float(trace.gate[after, :, 0].mean()),
            "gamma": float(trace.gamma[after, :, 0].median()),
            "table_rows": len(modal[seen].unique()),
            "table_share": on_modal / row.numel(),
            "table_excess": float(pooled_excess(bits, task.context, modal).mean())}  # fmt: skip


def write_steps(model: torch.nn.Module, task: NGramTask, sequences: int = 100) -> dict[str, float]:
    """How an NTM's first write head moves: ``{"one_row": share of steps whose largest weight
    is exactly one row from the previous step's (either way, circularly), "rows": distinct
    rows of largest weight a sequence, "largest": mean largest weight}``. A head that logs the
    sequence a row a step gives one_row near 1 and min(T, N) rows, and from step N on
    overwrites its oldest entries (the LSTM NTMs of seeds 1 and 2, docs/results/ngrams.md)."""
    bits, _ = task.sample_bits(sequences)
    with torch.no_grad():
        w = model(task.to_batch(bits).inputs, trace=True)[-1].write_weightings[:, :, 0]
    row, n = w.argmax(-1), w.shape[-1]  # (T, B)
    moved = (row[1:] - row[:-1]) % n
    written = torch.zeros(row.shape[1], n).scatter_(1, row.T, 1.0)  # (B, N): rows hit
    return {"one_row": float(((moved == 1) | (moved == n - 1)).float().mean()),
            "rows": float(written.sum(1).mean()), "largest": float(w.amax(-1).mean())}  # fmt: skip


def _nearest_centroid_accuracy(w: torch.Tensor, ctx: torch.Tensor) -> tuple[float, list[float]]:
    """Share of the second half of the sequences' steps whose context is the one whose mean
    weighting (over the first half, all steps) lies nearest their weighting (L1): how well the
    whole weighting, not only its largest weight, tells the contexts apart: ``(over all steps,
    [in each of TIME_WINDOWS windows of the sequence])`` (the windows of ``_excess_by_time``; a
    flat series: the addresses do not drift as the memory fills)."""
    half = w.shape[1] // 2
    fit, test = (w[:, :half], ctx[:, :half]), (w[:, half:], ctx[:, half:])
    labels = fit[1].unique()
    centroids = torch.stack([fit[0][fit[1] == k].mean(0) for k in labels])
    guess = labels[torch.cdist(test[0].reshape(-1, w.shape[-1]), centroids, p=1).argmin(1)]
    right = (guess == test[1].reshape(-1)).float().reshape(test[1].shape)  # (T, B)
    return float(right.mean()), [float(x.mean()) for x in right.tensor_split(TIME_WINDOWS)]


def checkpoints_from_args(
    doc: str, argv: list[str] | None, sequences: int
) -> tuple[argparse.Namespace, list[tuple[str, dict[str, Any], torch.nn.Module]]]:
    """The N-grams tools' command line (checkpoints, ``--sequences``, ``--seed``): its
    arguments and each checkpoint as ``(path, state, model in eval mode)``, one torch thread."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="N-grams run directories or checkpoint.pt")
    ap.add_argument("--sequences", type=int, default=sequences)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    loaded = []
    for path in args.checkpoints:
        state, model = load_model(path)
        if state["task_config"]["name"] != "ngrams":
            raise SystemExit(f"{path}: an N-grams checkpoint expected, got a "
                             f"{state['task_config']['name']} one")  # fmt: skip
        loaded.append((path, state, model.eval()))
    return args, loaded


def main(argv: list[str] | None = None) -> int:
    args, loaded = checkpoints_from_args(__doc__, argv, sequences=1000)
    for path, state, model in loaded:
        r = analyse(model, build_task(state["task_config"], args.seed), args.sequences)
        print(f"{path}: {r['excess']:.2f} ± {r['excess_se']:.2f} bits/seq above the optimal "
              "estimator (± its standard error)")  # fmt: skip
        for (a, b), (opt, mean, sd, n) in r["counts"].items():
            print(f"  N1={a} N0={b}: optimal {opt:.3f}, network mean {mean:.3f} sd {sd:.3f} "
                  f"({n} predictions)")  # fmt: skip
        seen = ", ".join(f"{k}{'+' if k == SEEN else ''}: {x:.2f}"
                         for k, x in enumerate(r["excess_by_seen"]))  # fmt: skip
        print(f"  excess bits/seq by times the context was seen before: {seen}")
        by_time = ", ".join(f"{x:.4f}" for x in r["excess_by_time"])
        print(f"  excess bits per prediction at contexts seen {TIME_SEEN[0]}-{TIME_SEEN[-1]} "
              f"times, by {TIME_WINDOWS} windows of the sequence: {by_time}")  # fmt: skip
        if state["model_config"].get("kind", "ntm") == "ntm":
            a = read_spread(model, build_task(state["task_config"], args.seed))
            print(f"  first read head over 200 sequences: weighting entropy {a['entropy']:.2f} "
                  f"nats, largest weight {a['largest']:.2f}, gate {a['gate']:.2f}, "
                  f"gamma (median) {a['gamma']:.2f}; its contexts read from "
                  f"{a['table_rows']} rows, {a['table_share']:.0%} of steps on their "
                  f"context's row; counts pooled by those rows alone would cost "
                  f"{a['table_excess']:.2f} bits/seq above optimal; the context told from "
                  f"the whole weighting in {a['context_accuracy']:.0%} of steps (by window: "
                  f"{', '.join(f'{x:.0%}' for x in a['context_accuracy_by_time'])})")  # fmt: skip
            m = write_steps(model, build_task(state["task_config"], args.seed))
            print(f"  first write head over 100 sequences: largest weight {m['largest']:.2f}, "
                  f"one row on from the last step's in {m['one_row']:.0%} of steps, "
                  f"{m['rows']:.1f} rows a sequence")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
