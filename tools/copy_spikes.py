"""Find the single sequences behind copy's loss spikes (docs/copy-recipes.md).

Trains the copy preset at batch 1 with Graves's RMSProp, logs every step's cost, and saves
each sequence that costs more than ``--threshold`` bits after the run has converged (moving
average of 100 steps below 1 bit) together with the parameters it was scored with. With
``--compare`` it instead rescores saved sequences with FastNTM in float32 and ReferenceNTM in
float32 and float64, to tell a kernel fault from a model failure, and prints each input.
With ``--probe`` it tests trained copy checkpoints on length-16 sequences with one vector
forced to all zeros (what the network sees after the delimiter too) and, as the control, to
all ones (as rare, 1/256 each), and counts the sequences not copied exactly.

    python -m tools.copy_spikes --seed 1 --steps 9000 --out /tmp/spikes
    python -m tools.copy_spikes --compare /tmp/spikes/spike-*.pt
    python -m tools.copy_spikes --probe docs/checkpoints/copy-lstm-seed*
"""

from __future__ import annotations

import argparse
import math
from collections import deque
from pathlib import Path

import torch
from torch import nn

from ntm_fast import FastNTM, ReferenceNTM
from ntm_fast.train.checkpoint import load_model
from ntm_fast.train.evaluate import build_task
from ntm_fast.train.objective import sequence_cost
from ntm_fast.train.optim import GravesRMSprop
from ntm_fast.train.presets import build_model, preset
from ntm_fast.train.tasks import TASKS, Batch, split_training_only


def find(seed: int, steps: int, lr: float, clip_norm: float, threshold: float, out: Path) -> None:
    torch.manual_seed(seed)
    model = build_model(preset("copy", "lstm").model)
    task = TASKS["copy"](seed=seed)
    opt = GravesRMSprop(model.parameters(), lr=lr)
    recent: deque[float] = deque(maxlen=100)
    out.mkdir(parents=True, exist_ok=True)
    for step in range(steps):
        batch = task.sample(1)
        cost, _ = sequence_cost(model(batch.inputs)[0], batch)
        bits = cost.item() / math.log(2)
        if recent and sum(recent) / len(recent) < 1.0 and bits > threshold:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            torch.save({"state": state, "batch": tuple(batch)}, out / f"spike-{step}.pt")
            print(f"step {step}: {bits:.1f} bits")
        recent.append(bits)
        opt.zero_grad(set_to_none=True)
        cost.backward()
        nn.utils.clip_grad_value_(model.parameters(), 10.0)
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()


def compare(paths: list[str]) -> None:
    model_kw = {k: v for k, v in preset("copy", "lstm").model.items() if k != "kind"}
    for path in paths:
        saved = torch.load(path, weights_only=True)
        batch = Batch(*saved["batch"])
        scores = []
        for cls, dtype in ((FastNTM, torch.float32), (ReferenceNTM, torch.float32),
                           (ReferenceNTM, torch.float64)):  # fmt: skip
            model = cls(**model_kw).to(dtype)
            model.load_state_dict({k: v.to(dtype) for k, v in saved["state"].items()})
            with torch.no_grad():
                logits = model(batch.inputs.to(dtype))[0].double()
            cost, _ = sequence_cost(logits, Batch(*(t.double() for t in batch)))
            scores.append(f"{cost.item() / math.log(2):8.2f}")
        length = int(batch.mask.sum())
        bits = batch.inputs[:length, 0, :8].round().long()
        values = (bits * (2 ** torch.arange(7, -1, -1))).sum(-1).tolist()
        print(f"{path}: fast32 ref32 ref64 = {' '.join(scores)} bits; inputs {values}")


PROBE_LENGTH, PROBE_POSITIONS = 16, (0, 1, 4, 8, 12, 15)


def probe(paths: list[str], per_position: int) -> dict[str, tuple[int, int, int]]:
    """{checkpoint: (failures with a zero vector, with a ones vector, sequences each)}."""
    results = {}
    for path in paths:
        state, model = load_model(path)
        model.eval()
        config = {**split_training_only(state["task_config"])[0],  # the paper's fair bits
                  "min_length": PROBE_LENGTH, "max_length": PROBE_LENGTH}  # fmt: skip
        fails = []
        for fill in (0.0, 1.0):
            task = build_task(config, seed=99)
            count = 0
            for p in PROBE_POSITIONS:
                batch = task.sample(per_position)
                x, y = batch.inputs.clone(), batch.targets.clone()
                x[p, :, : task.bits] = fill
                y[PROBE_LENGTH + 1 + p] = fill  # vector p is emitted PROBE_LENGTH + 1 steps on
                with torch.no_grad():
                    wrong = (model(x)[0] > 0).float().ne(y).float().sum(-1)
                count += int(((wrong * batch.mask).sum(0) > 0).sum())
            fails.append(count)
        n = per_position * len(PROBE_POSITIONS)
        results[path] = (fails[0], fails[1], n)
        print(f"{path}: not copied exactly: {fails[0]}/{n} sequences with an all-zero vector, "
              f"{fails[1]}/{n} with an all-ones vector")  # fmt: skip
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=9000)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--clip-norm", type=float, default=10.0)
    p.add_argument("--threshold", type=float, default=100.0, help="bits of one sequence")
    p.add_argument("--out", type=Path, default=Path("spikes"))
    p.add_argument("--compare", nargs="+", help="saved spike files to rescore")
    p.add_argument("--probe", nargs="+", help="copy checkpoints to test on forced vectors")
    p.add_argument("--per-position", type=int, default=500, help="--probe's sequences")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.probe:
        probe(a.probe, a.per_position)
    elif a.compare:
        compare(a.compare)
    else:
        find(a.seed, a.steps, a.lr, a.clip_norm, a.threshold, a.out)


if __name__ == "__main__":
    main()
