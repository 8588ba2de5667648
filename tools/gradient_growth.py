"""How far back a network's gradient reaches, and what carries it when it explodes.

For each horizon T, the norm of the parameter gradient of one prediction's cost (step T's,
one sequence at a time, the sequence cut after step T) — in a network whose backward pass
through time is stable it stays about the same as T grows; in one whose gradients explode it
grows geometrically with T, and training steps on long sequences are then dominated by it.
The cuts tell which recurrence carries the growth, by detaching one path into each step's
addressing (eqs. 5-9) and measuring again:

* ``read-weighting``: the read heads' previous weighting (w_{t-1} in eq. 7);
* ``write-weighting``: the write heads' previous weighting;
* ``memory``: the memory the addressing compares its keys with (eq. 5); the memory read
  (eq. 2) and the read vectors fed back to the controller keep their gradient.

    python -m tools.gradient_growth RUN [RUN ...] [--sequences 6] [--seed 1234]

Session 37 (docs/results/ngrams-write-follows-read.md#why-runs-fall-back-session-37): a
feedforward N-grams network falling back to chance (seed 0 with --write-follow-penalty, at 50k
sequences) gives 2.7 at T = 5, 983 at T = 40 and 3.3e8 at T = 199 (medians); two committed
ones (ngrams-ff-seed2, ngrams-ff-follow-seed8) stay at 2-7 at every T.
"""

from __future__ import annotations

import argparse
import statistics
import types
from typing import Any

import torch
import torch.nn.functional as F

from ntm_fast import reference
from ntm_fast.train.checkpoint import load_model
from ntm_fast.train.evaluate import build_task

HORIZONS = (5, 10, 20, 40, 80, 160)
CUTS = ("read-weighting", "write-weighting", "memory")


def _cut_ops(cut: str | None, read_heads: int) -> types.ModuleType | types.SimpleNamespace:
    """The reference memory ops, with ``address`` detaching the path ``cut`` names."""
    if cut is None:
        return reference
    if cut not in CUTS:
        raise ValueError(f"cut: expected one of {CUTS} or None, got {cut!r}")

    def address(memory, key, beta, gate, shift, gamma, w_prev):  # type: ignore[no-untyped-def]
        R = read_heads
        if cut == "read-weighting":
            w_prev = torch.cat([w_prev[:, :R].detach(), w_prev[:, R:]], 1)
        elif cut == "write-weighting":
            w_prev = torch.cat([w_prev[:, :R], w_prev[:, R:].detach()], 1)
        else:
            memory = memory.detach()
        return reference.address(memory, key, beta, gate, shift, gamma, w_prev)

    return types.SimpleNamespace(address=address, read=reference.read, write=reference.write)


def step_gradient_norms(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, horizon: int,
    cut: str | None = None,
) -> list[float]:  # fmt: skip
    """For each sequence b of ``inputs`` `(T, B, X)`, the parameter-gradient norm of the
    binary cross-entropy of its prediction at step ``horizon`` (the sequence cut after it),
    with the path ``cut`` (one of :data:`CUTS`, or None) detached. Runs the model on the
    reference ops; the model's own backend is put back afterwards."""
    if not 0 <= horizon < inputs.shape[0]:
        raise ValueError(f"horizon: expected 0 <= horizon < {inputs.shape[0]}, got {horizon}")
    ops = _cut_ops(cut, model.read_heads)
    saved = model.memory_ops
    model.memory_ops = lambda device: ops  # type: ignore[method-assign]
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    try:
        for b in range(inputs.shape[1]):
            logits = model(inputs[: horizon + 1, b : b + 1])[0]
            loss = F.binary_cross_entropy_with_logits(logits[horizon], targets[horizon, b : b + 1])
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            norms.append(float(torch.nn.utils.get_total_norm([g for g in grads if g is not None])))
    finally:
        model.memory_ops = saved  # type: ignore[method-assign]
    return norms


def growth(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
    horizons: tuple[int, ...] = HORIZONS, cut: str | None = None,
) -> dict[int, tuple[float, float]]:  # fmt: skip
    """``{T: (median, max)}`` over the sequences of :func:`step_gradient_norms`."""
    out = {}
    for T in horizons:
        norms = step_gradient_norms(model, inputs, targets, T, cut)
        out[T] = (statistics.median(norms), max(norms))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="NTM run directories or checkpoint.pt")
    ap.add_argument("--sequences", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for path in args.checkpoints:
        state, model = load_model(path, backend="reference")
        if state["model_config"].get("kind", "ntm") != "ntm":
            raise SystemExit(f"{path}: an NTM checkpoint expected (the tool cuts its addressing)")
        batch = build_task(state["task_config"], args.seed).sample(args.sequences)
        last = int(batch.mask.shape[0]) - 1
        horizons = tuple(T for T in (*HORIZONS, last) if T <= last and bool(batch.mask[T].all()))
        if not horizons:
            raise SystemExit(f"{path}: no horizon with a target in every sequence")
        print(f"{path}: one prediction's gradient norm, median / max over {args.sequences} "
              "sequences, by its step T")  # fmt: skip
        for cut in (None, *CUTS):
            row: dict[Any, Any] = growth(model.eval(), batch.inputs, batch.targets, horizons, cut)
            cells = "  ".join(f"T{T} {m:.3g}/{x:.3g}" for T, (m, x) in row.items())
            print(f"  {'full' if cut is None else 'cut ' + cut:>20}: {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
