"""How an N-grams network's errors behave: its logit minus eq. (10)'s, per prediction.

`tools.ngrams_counts` says where the bits go (by count, by window); this tool asks what the
errors look like, to tell a noisy read (independent at each visit) from a wrong count held in
the memory (the same error each time the context comes back):

* ``persistence``: the correlation of a context's error with its error at the context's
  previous occurrence in the sequence (0: fresh noise at each read; near 1: carried over);
* ``unseen_rms_by_time``: the size of the logit at contexts not yet seen, where eq. (10)
  says 1/2 exactly, in TIME_WINDOWS windows of the sequence: what the rows of unseen contexts
  pick up from writes aimed elsewhere;
* ``unseen_exposure``: at those predictions, the read-weighted write mass the rows read have
  received so far, and its correlation with the logit's size within each window;
* ``neighbour_bleed``: at those predictions, a regression of the logit on every other
  context's ones-minus-zeros so far, grouped by which bits it differs in; a network that
  pools a small share a of context c XOR m's counts shows a coefficient near 2a at m
  (a little under it: 0.018 for a = 0.01, tested).

    python -m tools.ngrams_residuals docs/checkpoints/ngrams-ff-seed0 \
        docs/checkpoints/ngrams-lstm-default-seed0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ntm_fast.train.evaluate import build_task
from ntm_fast.train.tasks.ngrams import NGramTask
from tools.ngrams_counts import TIME_WINDOWS, checkpoints_from_args, context_counts, context_ids


def _logit(p: Tensor) -> Tensor:
    return torch.log(p) - torch.log1p(-p)


def optimal_logits(task: NGramTask, bits: Tensor) -> Tensor:
    """`(B, T)` float64 logits of eq. (10) (the task's own estimator; 0 for the first
    ``context`` bits)."""
    return _logit(task.optimal_probabilities(bits).double())


def network_logits(model: torch.nn.Module, task: NGramTask, bits: Tensor) -> Tensor:
    """`(B, T)` float64 logits of the network's prediction of each bit."""
    with torch.no_grad():
        return model(task.to_batch(bits).inputs)[0][..., 0].T.double()


def running_balance(bits: Tensor, context: int) -> Tensor:
    """`(B, T, 2**context)`: for every context, its ones minus zeros seen before step t."""
    B, T = bits.shape
    ctx = context_ids(bits, context)
    out = torch.zeros(B, T, 2**context, dtype=torch.float64)
    step = torch.zeros(B, 2**context, dtype=torch.float64)
    for t in range(T):
        out[:, t] = step
        k = ctx[:, t]
        seen = k >= 0
        step[seen, k[seen]] += 2 * bits[seen, t].double() - 1
    return out


def previous_residual(residual: Tensor, ctx: Tensor) -> Tensor:
    """`(B, T)`: the residual at the previous occurrence of step t's context (nan: none)."""
    B, T = residual.shape
    out = torch.full((B, T), math.nan, dtype=residual.dtype)
    last = torch.full((B, int(ctx.max()) + 1), math.nan, dtype=residual.dtype)
    rows = torch.arange(B)
    for t in range(T):
        k = ctx[:, t]
        seen = k >= 0
        out[seen, t] = last[rows[seen], k[seen]]
        last[rows[seen], k[seen]] = residual[seen, t]
    return out


def persistence(task: NGramTask, bits: Tensor, logits: Tensor) -> tuple[float, float]:
    """``(sd of the residual, its correlation with the residual at the context's previous
    occurrence)`` over predictions whose context was seen before."""
    ctx = context_ids(bits, task.context)
    residual = logits - optimal_logits(task, bits)
    before = previous_residual(residual, ctx)
    keep = ~before.isnan()
    pair = torch.stack([before[keep], residual[keep]])
    return float(residual[ctx >= 0].std()), float(torch.corrcoef(pair)[0, 1])


def _unseen(bits: Tensor, context: int) -> Tensor:
    """`(B, T)` bool: the context is known (after ``context`` steps) and not yet seen."""
    n1, n0 = context_counts(bits, context)
    return (n1 == 0) & (n0 == 0) & (context_ids(bits, context) >= 0)


def _windows(T: int, context: int) -> list[Tensor]:
    return list(torch.arange(context, T).tensor_split(TIME_WINDOWS))


def unseen_rms_by_time(bits: Tensor, logits: Tensor, context: int) -> list[float]:
    """The logit's root mean square at unseen contexts (eq. 10: 0) in each window."""
    unseen = _unseen(bits, context)
    return [float(logits[:, s][unseen[:, s]].pow(2).mean().sqrt())
            for s in _windows(bits.shape[1], context)]  # fmt: skip


def neighbour_bleed(bits: Tensor, logits: Tensor, context: int) -> dict[str, object]:
    """At unseen contexts, least squares of the logit on the other contexts' balances
    (:func:`running_balance`), one coefficient per XOR mask m (the context c ^ m):
    ``{"coef": {m: coefficient}, "r2": share of the logit's variance explained}``."""
    unseen = _unseen(bits, context)
    c = context_ids(bits, context)[unseen]
    balance = running_balance(bits, context)[unseen]  # (M, 2**context)
    masks = torch.arange(1, 2**context)
    x = balance.gather(1, c[:, None] ^ masks[None])  # column i: context c ^ masks[i]
    x = torch.cat([torch.ones(len(c), 1, dtype=x.dtype), x], 1)
    y = logits[unseen]
    coef = torch.linalg.lstsq(x, y[:, None]).solution[:, 0]
    r2 = 1 - float((y - x @ coef).pow(2).mean() / y.var())
    return {"coef": {int(m): float(b) for m, b in zip(masks, coef[1:], strict=True)}, "r2": r2}


def unseen_exposure(model: torch.nn.Module, task: NGramTask, bits: Tensor) -> dict[str, list]:
    """At unseen contexts, the first read head's weighting times the first write head's
    write mass per row so far: ``{"mean": by window, "corr": correlation with |logit|
    by window}``. Rows no write has aimed at yet give 0."""
    with torch.no_grad():
        out = model(task.to_batch(bits).inputs, trace=True)
    logits, trace = out[0][..., 0].T.double(), out[-1]
    read = trace.read_weightings[:, :, 0].transpose(0, 1).double()  # (B, T, N)
    write = trace.write_weightings[:, :, 0].transpose(0, 1).double()
    so_far = write.cumsum(1) - write  # mass before step t's own write
    exposure = (read * so_far).sum(-1)
    unseen = _unseen(bits, task.context)
    mean, corr = [], []
    for s in _windows(bits.shape[1], task.context):
        e, y = exposure[:, s][unseen[:, s]], logits[:, s][unseen[:, s]].abs()
        mean.append(float(e.mean()))
        corr.append(float(torch.corrcoef(torch.stack([e, y]))[0, 1]))
    return {"mean": mean, "corr": corr}


def main(argv: list[str] | None = None) -> int:
    args, loaded = checkpoints_from_args(__doc__, argv, sequences=400)
    for path, state, model in loaded:
        task = build_task(state["task_config"], args.seed)
        bits, _ = task.sample_bits(args.sequences)
        logits, c = network_logits(model, task, bits), task.context
        sd, corr = persistence(task, bits, logits)
        print(f"{path}: logit error sd {sd:.3f}; correlation with the error at the context's "
              f"previous occurrence {corr:+.2f}")  # fmt: skip
        by_time = ", ".join(f"{x:.3f}" for x in unseen_rms_by_time(bits, logits, c))
        print(f"  unseen contexts (eq. 10: 1/2): logit rms by window {by_time}")
        bleed = neighbour_bleed(bits, logits, c)
        top = sorted(bleed["coef"].items(), key=lambda kv: -abs(kv[1]))[:3]
        print(
            f"  their logit on other contexts' ones minus zeros (R² {bleed['r2']:.2f}): "
            + ", ".join(f"c^{m:0{c}b} {b:+.3f}" for m, b in top)
        )
        if state["model_config"].get("kind", "ntm") == "ntm":
            e = unseen_exposure(model, task, bits)
            print("  write mass on the rows they read, by window: "
                  + ", ".join(f"{m:.2f} (corr with |logit| {r:+.2f})"
                              for m, r in zip(e["mean"], e["corr"], strict=True)))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
