"""Where a repeat-copy NTM holds its count of repeats left, and whether it drifts.

A linear probe: ridge regression from part of the network's state at the first step of each
repeat (the LSTM controller's cell ``c`` or hidden ``h``, or the read vectors) to the number of
repeats left, fitted on sequences within the training range (lengths ``4..10`` x ``2..10``
repeats) and applied to longer ones (``--length``, 10 repeats). Printed: the probe's error
within the training range (root mean square, in repeats; predicting the mean gives 2.44) and,
per repeat of the longer sequences, the mean decoded minus true count: a count that leaks
shows as a drift there (docs/results/repeat-copy-more-repeats.md,
docs/results/repeat-copy-controller-reset.md).

    python -m tools.repeat_count_probe docs/checkpoints/repeat-copy-lstm-seed5
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from ntm_fast.model_checks import NTMState
from ntm_fast.train.checkpoint import load_model
from tools.repeat_beyond import sample

#: what the probe reads of a state, per batch row
PARTS: dict[str, Callable[[NTMState], torch.Tensor]] = {
    "c": lambda s: s.controller[1][-1],
    "h": lambda s: s.controller[0][-1],
    "reads": lambda s: s.read_vectors.flatten(1),
}


@torch.no_grad()
def repeat_states(model: torch.nn.Module, inputs: torch.Tensor, length: int, repeats: int
                  ) -> list[NTMState]:  # fmt: skip
    """The state on entering each repeat's first output step (after step ``length + r *
    length``), repeats ``r = 0 .. repeats - 1``."""
    state, ops = model.initial_state(inputs.shape[1]), model.memory_ops(inputs.device)
    kept: list[NTMState] = []
    for t in range(length + (repeats - 1) * length + 1):
        _, state, _ = model.step(inputs[t], state, ops)
        if t % length == 0 and t >= length:
            kept.append(state)
    return kept


def features(model: torch.nn.Module, config: dict, part: str, length: int, repeats: int,
             sequences: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(X, left)``: the part of the state at each repeat's start, and the repeats left
    (``repeats - r``), float64, repeat-major."""
    batch = sample(config, length, repeats, sequences, seed)
    states = repeat_states(model, batch.inputs.to(torch.float64), length, repeats)
    x = torch.cat([PARTS[part](s) for s in states]).double()
    left = torch.arange(repeats, 0, -1, dtype=torch.float64).repeat_interleave(sequences)
    return x, left


def fit(
    x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-2
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The ridge-regression probe of ``y`` on ``x`` (centred, with a bias)."""
    mean = x.mean(0)
    design = lambda z: torch.cat([z - mean, torch.ones(len(z), 1, dtype=z.dtype)], 1)  # noqa: E731
    a = design(x)
    w = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=a.dtype), a.T @ y)
    return lambda z: design(z) @ w


def probe(model: torch.nn.Module, config: dict, part: str, length: int, sequences: int = 16,
          step: int = 1) -> tuple[float, list[float]]:  # fmt: skip
    """(training-range RMS error, mean decoded - true count at each of 10 repeats of
    ``length``); fitted on every ``step``-th length of 4..10 and count of 2..10."""
    pairs = [features(model, config, part, n, k, sequences, 100 * n + k)
             for n in range(4, 11, step) for k in range(2, 11, step)]  # fmt: skip
    x, y = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    decode = fit(x, y)
    rms = float((decode(x) - y).pow(2).mean().sqrt())
    x_long, y_long = features(model, config, part, length, 10, 2 * sequences, 7)
    drift = (decode(x_long) - y_long).view(10, -1).mean(1)
    return rms, [float(d) for d in drift]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="repeat-copy LSTM runs or checkpoint.pt")
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--sequences", type=int, default=16, help="per (length, repeats) fitted")
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        state, model = load_model(path, "auto")
        model = model.double().eval()
        if not model.controller.state_shapes:
            parser.error(f"{path}: expected an LSTM controller (the probe reads its state)")
        print(f"{path}: decoded - true repeats left at {args.length} x 10, repeats 1..10")
        for part in args.parts:
            rms, drift = probe(model, state["task_config"], part, args.length, args.sequences)
            cells = " ".join(f"{d:+.2f}" for d in drift)
            print(f"  {part:5s} training range rms {rms:.3f} | {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
