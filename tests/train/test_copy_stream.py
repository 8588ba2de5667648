"""tools/copy_stream.py: the learning-curve summary, the fair-bit failure count and the replay
of a run's spike windows, each on inputs whose answer is known."""

from __future__ import annotations

import torch
from tiny_run import tiny

from ntm_fast.train import Trainer
from ntm_fast.train.checkpoint import load_checkpoint
from ntm_fast.train.distributed import data_seed
from ntm_fast.train.evaluate import build_task
from tools.copy_stream import curve, fair_failures, spike_sequences

HEADER = "step,sequences,cost_bits,bit_errors,seconds,seq_per_s\n"


def write_log(run, costs: list[float]) -> None:
    run.mkdir(exist_ok=True)
    rows = [f"{2 * (i + 1)},{4 * (i + 1)},{c},0,{0.5 * (i + 1)},8" for i, c in enumerate(costs)]
    (run / "log.csv").write_text(HEADER + "\n".join(rows) + "\n")


def test_curve_counts_the_windows_above_1_bit_after_the_first_below_0_1(tmp_path):
    write_log(tmp_path, [80, 5, 0.5, 3, 0.08, 0.2, 7.5, 0.01, 1.5, 0.04])
    c = curve(tmp_path)
    assert c["first"] == {1.0: (12, 1.5), 0.1: (20, 2.5), 0.05: (32, 4.0)}
    # the 3 bits before the first < 0.1 do not count; 7.5 and 1.5 after it do
    assert (c["after"], c["above_1"], c["largest"], c["end"]) == (6, 2, 7.5, 0.04)
    write_log(tmp_path, [80, 5, 0.5])
    assert curve(tmp_path)["first"][0.1] is None and curve(tmp_path)["above_1"] == 0


class Constant(torch.nn.Module):
    """Outputs a fixed logit everywhere: every bit 1 (positive) or 0 (negative)."""

    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = logit

    def forward(self, x):
        return (torch.full((*x.shape[:2], 8), self.logit),)


def test_fair_failures_count_sequences_not_copied():
    config = {"name": "copy", "bits": 8, "min_length": 1, "max_length": 4,
              "zero_vector_percent": 100}  # fmt: skip
    # always 0: fails every sequence but the all-zero ones, which fair bits (not the
    # training-only 100% blanking) make 1 in 256 per vector
    above, inexact, n = fair_failures(Constant(-20.0), config, 250, batch_size=64)
    assert n == 250 and 240 <= inexact <= 250 and above == inexact
    assert fair_failures(Constant(0.0), config, 10) == (10, 10, 10)  # ln 2 nats a bit: 1+ bit


def test_spike_windows_replay_the_runs_own_stream(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(run, steps=6, log_every=2)).run()  # an untrained network fails everything
    write_log(run, [9.0, 0.05, 4.0])  # the window of steps 5-6 lies above 1 bit after < 0.1
    found = spike_sequences(run, threshold=0.0)
    state = load_checkpoint(run)
    task = build_task(state["task_config"], data_seed(state["config"]["seed"], 0))
    batches = [task.sample(4) for _ in range(6)]
    assert [(s["window"], s["step"]) for s in found] == [(6, 5)] * 4 + [(6, 6)] * 4
    for s, j in zip(found, [0, 1, 2, 3] * 2, strict=True):
        batch = batches[s["step"] - 1]
        length = int(batch.mask[:, j].sum())
        zeros = (batch.inputs[:length, j, :8].sum(-1) == 0).nonzero().flatten().tolist()
        assert (s["length"], s["zero_vectors"]) == (length, zeros) and s["bits"] > 0
    write_log(run, [9.0, 0.05, 0.01])
    assert spike_sequences(run) == []
