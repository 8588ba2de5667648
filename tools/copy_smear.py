"""How sharply a trained copy network's write head stays on one slot in the output phase.

In the output phase a copy network has nothing left to store. Networks that copy length 120
keep their write head on one slot (one step behind the read head); most that fail spread it
over the whole memory and keep erasing, which costs nothing in a length-20 output phase and
wipes out the unread rows of a length-120 one (docs/results/copy-weight-decay.md). "Smear" is
the write weighting's largest entry averaged over output steps ``--skip``.. of ``--sequences``
fresh fair-bit sequences of length ``--length`` (1: one slot; 1/N: spread evenly), and beside
it the share of those sequences copied exactly.

    python -m tools.copy_smear docs/checkpoints/copy-lstm-seed*               # length 20
    python -m tools.copy_smear docs/checkpoints/copy-lstm-seed* --length 120 --skip 10
"""

from __future__ import annotations

import argparse

import torch

from ntm_fast.train.checkpoint import load_model
from ntm_fast.train.evaluate import build_task, score
from ntm_fast.train.tasks import split_training_only


@torch.no_grad()
def smear(
    run: str, length: int = 20, skip: int = 5, sequences: int = 8, seed: int = 4242
) -> tuple[float, float]:
    """(smear, share of the sequences copied exactly) of the checkpoint ``run``."""
    state, model = load_model(run)
    model.eval()
    config = dict(split_training_only(state["task_config"])[0])  # fair bits, as evaluated
    if config.get("name") != "copy":
        raise ValueError(f"{run}: a copy checkpoint expected, got task {config.get('name')!r}")
    if not 0 <= skip < length:
        raise ValueError(f"skip: expected 0 <= skip < length ({length}), got {skip}")
    config.update(min_length=length, max_length=length)
    batch = build_task(config, seed).sample(sequences)
    _, _, trace = model(batch.inputs, trace=True)
    first_output = length + 1  # the inputs, then the delimiter
    writes = trace.write_weightings[first_output + skip : first_output + length]  # every head
    _, errors, _, _ = score(model, batch)
    return float(writes.max(-1).values.mean()), float((errors == 0).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="copy checkpoints or run directories")
    parser.add_argument("--length", type=int, default=20, help="sequence length (default 20)")
    parser.add_argument("--skip", type=int, default=5, help="output steps left out (default 5)")
    parser.add_argument("--sequences", type=int, default=8, help="fresh sequences (default 8)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        value, exact = smear(run, args.length, args.skip, args.sequences)
        print(f"{run}: smear {value:.3f} at length {args.length}, {exact:.0%} copied exactly")


if __name__ == "__main__":
    main()
