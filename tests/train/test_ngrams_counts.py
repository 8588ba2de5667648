"""tools.ngrams_counts: checked on hand-counted contexts, on stand-in networks whose
predictions are known (the optimal estimator itself, and a coin), and on the committed
networks whose difference docs/results/ngrams-feedforward.md states."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ntm_fast.train.checkpoint import load_model
from ntm_fast.train.evaluate import build_task
from tools.ngrams_counts import (
    analyse,
    context_counts,
    context_ids,
    main,
    pooled_excess,
    read_spread,
    write_steps,
)

ROOT = Path(__file__).resolve().parents[2]


def task(seed: int = 5):
    return build_task({"name": "ngrams"}, seed)


class Optimal(nn.Module):
    """Predicts eq. (10) from its inputs (the previous bits): no excess at all."""

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor]:
        bits = torch.zeros(inputs.shape[1], inputs.shape[0])
        bits[:, :-1] = inputs[1:, :, 0].T  # step t's input is bit t-1; the last bit unused
        p = task().optimal_probabilities(bits)
        return (torch.logit(p.double()).float().T.unsqueeze(-1),)


class NoisyOptimal(Optimal):
    """Eq. (10) with Gaussian noise of a fixed size on the logit: as imprecise late in a
    sequence as early."""

    def __init__(self) -> None:
        super().__init__()
        self.noise = torch.Generator().manual_seed(0)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor]:
        (logits,) = super().forward(inputs)
        return (logits + 0.3 * torch.randn(logits.shape, generator=self.noise),)


class Coin(nn.Module):
    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.zeros(*inputs.shape[:2], 1),)


def test_context_counts_by_hand():
    bits = torch.tensor([[1.0, 0, 1, 1, 0, 1, 1]])  # context of 2 bits
    n1, n0 = context_counts(bits, 2)
    # contexts before steps 2..6: 10, 01, 11, 10, 01; "10" was followed by 1 at step 2,
    # "01" by 1 at step 3
    assert n1.tolist() == [[-1, -1, 0, 0, 0, 1, 1]]
    assert n0.tolist() == [[-1, -1, 0, 0, 0, 0, 0]]


def test_pooled_counts_and_their_price_by_hand():
    """All four 2-bit contexts on one row of counts: every count is of the bits so far."""
    bits = torch.tensor([[1.0, 0, 1, 1, 0, 1, 1]])
    n1, n0 = context_counts(bits, 2, torch.zeros(4, dtype=torch.long))
    assert n1.tolist() == [[-1, -1, 0, 1, 2, 2, 3]]
    assert n0.tolist() == [[-1, -1, 0, 0, 0, 1, 1]]
    # steps 2-6 predict 1 with 1/2, 3/4, 5/6, 5/8, 7/10 (pooled) against 1/2, 1/2, 1/2, 3/4,
    # 3/4 (per context: 10, 01, 11, 10, 01); the bits are 1, 1, 0, 1, 1
    pooled = -math.log2(0.5 * 0.75 * (1 / 6) * 0.625 * 0.7)
    own = -math.log2(0.5**3 * 0.75**2)
    assert pooled_excess(bits, 2, torch.tensor([7, 7, 7, 7])).item() == pytest.approx(pooled - own)
    assert pooled_excess(bits, 2, torch.tensor([3, 1, 0, 2])).item() == 0  # a row each


def test_context_ids_by_hand():
    bits = torch.tensor([[1.0, 0, 1, 1, 0]])  # context of 2 bits, the latest lowest
    assert context_ids(bits, 2).tolist() == [[-1, -1, 0b10, 0b01, 0b11]]


class TableReader(nn.Module):
    """Reads row ``offset + context`` with all its weight at every step that has a context:
    a perfect table of one row per context."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, inputs: torch.Tensor, trace: bool) -> tuple[object, ...]:
        T, B = inputs.shape[:2]
        bits = torch.zeros(B, T)
        bits[:, :-1] = inputs[1:, :, 0].T  # step t's input is bit t-1
        rows = context_ids(bits, 5).T.clamp(min=0) + self.offset  # (T, B)
        w = torch.nn.functional.one_hot(rows, 128).float()[:, :, None]  # (T, B, 1, N)
        ones = torch.ones(T, B, 2)
        return (None, None, SimpleNamespace(read_weightings=w, gate=ones, gamma=ones))


def test_read_spread_finds_a_row_per_context():
    a = read_spread(TableReader(offset=40), task(), sequences=20)
    assert a["table_rows"] == 32 and a["table_share"] == 1.0 and a["table_excess"] == 0
    assert a["context_accuracy"] == 1.0 and a["context_accuracy_by_time"] == [1.0] * 4
    assert a["entropy"] == pytest.approx(0.0, abs=1e-6) and a["largest"] == 1.0


def test_the_optimal_estimator_has_no_excess_and_no_spread():
    r = analyse(Optimal(), task(), sequences=60, batch=30)
    assert abs(r["excess"]) < 1e-4 and r["excess_se"] < 1e-4
    assert all(abs(x) < 1e-4 for x in r["excess_by_seen"] + r["excess_by_time"])
    for opt, mean, sd, n in r["counts"].values():
        assert n > 0 and mean == pytest.approx(opt, abs=1e-5) and sd < 1e-5


def test_a_coin_costs_one_bit_a_step():
    """Predicting 1/2 costs 200 bits a sequence: excess = 200 - the optimal cost, split
    over the times seen; every mean 0.5 with no spread."""
    t = task()
    r = analyse(Coin(), t, sequences=40, batch=40)
    bits, _ = task().sample_bits(40)  # the same draw: the same seed, from the start
    assert r["excess"] == pytest.approx(200 - float(t.optimal_cost(bits).mean()), rel=1e-5)
    assert r["first_bits"] == pytest.approx(0.0, abs=1e-6)  # the first 5 bits: 1/2 is optimal
    assert sum(r["excess_by_seen"]) == pytest.approx(r["excess"], rel=1e-5)
    assert all(mean == 0.5 and sd == 0 for _, mean, sd, _ in r["counts"].values())


def test_the_committed_feedforward_network_scatters_more_than_the_lstm_one():
    """docs/results/ngrams-feedforward.md: both right on average after one observation (mean within
    0.04 of 0.75), the feedforward NTM's predictions spread over twice the LSTM NTM's."""
    sd = {}
    for name in ("ngrams-ff-seed0", "ngrams-lstm-seed0"):
        _, model = load_model(ROOT / "docs/checkpoints" / name)
        opt, mean, sd[name], _ = analyse(model.eval(), task(1234), 200)["counts"][(1, 0)]
        assert abs(mean - opt) < 0.04
    assert sd["ngrams-ff-seed0"] > 2 * sd["ngrams-lstm-seed0"]


def test_read_spread_of_a_fresh_ntm_is_bounded_by_a_row_and_the_uniform_weighting():
    """A weighting's entropy lies between 0 (one row) and ln N (uniform); the largest weight
    between 1 / N and 1; gamma >= 1; the gate a sigmoid."""
    from ntm_fast.train.presets import build_model, preset

    torch.manual_seed(0)
    model = build_model(preset("ngrams", "feedforward").model, backend="reference")
    a = read_spread(model.eval(), task(), sequences=4)
    assert 0 <= a["entropy"] <= math.log(128) + 1e-5
    assert 1 / 128 - 1e-6 <= a["largest"] <= 1 and a["gamma"] >= 1 and 0 < a["gate"] < 1
    assert 1 <= a["table_rows"] <= 32 and 0 < a["table_share"] <= 1
    assert 0 <= a["context_accuracy"] <= 1


def test_the_committed_feedforward_networks_read_spread_rises_with_their_excess():
    """docs/results/ngrams-feedforward.md (session 30): seed 2 (2.02 bits above optimal)
    reads from fewer rows at once than seed 3 (2.40), and seed 3 than seed 5 (7.34): entropy
    0.7, 2.0, 2.9 nats."""
    entropy = []
    for seed in (2, 3, 5):
        _, model = load_model(ROOT / f"docs/checkpoints/ngrams-ff-seed{seed}")
        entropy.append(read_spread(model.eval(), task(1234), 50)["entropy"])
    assert entropy == sorted(entropy) and entropy[2] - entropy[0] > 1.5


def test_the_committed_feedforward_networks_nearest_optimal_keep_a_row_per_context():
    """docs/results/ngrams-feedforward.md: seed 2 (2.02 bits above optimal) reads its 32
    contexts from 27 rows, seed 6 (2.91) from 11, one row for every context ending in 01;
    counts pooled by those rows alone would cost ~5 and ~28 bits, so seed 6 tells the
    contexts sharing a row apart by the rest of its weighting (its nearest mean weighting
    names the context in ~80% of steps)."""
    rows, price = {}, {}
    for seed in (2, 6):
        _, model = load_model(ROOT / f"docs/checkpoints/ngrams-ff-seed{seed}")
        a = read_spread(model.eval(), task(1234), 100)
        rows[seed], price[seed] = a["table_rows"], a["table_excess"]
        assert a["table_share"] > 0.85 and a["context_accuracy"] > 0.7
    assert rows[2] >= 25 and rows[6] <= 13
    assert 2 < price[2] < 10 and price[6] > 20


def test_the_committed_feedforward_networks_addresses_do_not_drift_as_the_memory_fills():
    """docs/results/ngrams-feedforward.md (session 35): the read weighting names the step's
    context as often in the sequence's last quarter as in its first (seeds 0 and 8: 78-79% and
    94-95% in every window), while their excess per prediction rises ~3-4 times."""
    for seed in (0, 8):
        _, model = load_model(ROOT / f"docs/checkpoints/ngrams-ff-seed{seed}")
        by_time = read_spread(model.eval(), task(1234), 100)["context_accuracy_by_time"]
        assert max(by_time) - min(by_time) < 0.04 and min(by_time) > 0.7


def test_noise_that_does_not_grow_gives_a_flat_excess_by_time():
    """The windows compare predictions at the same counts (1-5 observations), so a fixed
    noise costs about the same in each (0.011, 0.010, 0.011, 0.009 bits over 1,000
    sequences; the later windows' rarer contexts lean to a certain bit, where a noisy logit
    costs less), against the 2.8-4.6 times rise of the trained feedforward NTMs (below)."""
    by_time = analyse(NoisyOptimal(), task(1234), 1000)["excess_by_time"]
    assert len(by_time) == 4 and all(0.007 < x < 0.014 for x in by_time)
    assert 0.6 < by_time[-1] / by_time[0] < 1.2


def test_the_committed_feedforward_networks_counts_blur_as_the_sequence_goes_on():
    """docs/results/ngrams-feedforward.md (session 33): at the same counts the feedforward
    NTM's excess per prediction rises ~3 times from the first quarter of the sequence to the
    last (seed 0: 0.008 to 0.023 bits), the LSTM NTM's ~2 times and to well under the
    feedforward one's."""
    last = {}
    for name in ("ngrams-ff-seed0", "ngrams-lstm-seed0"):
        _, model = load_model(ROOT / "docs/checkpoints" / name)
        by_time = analyse(model.eval(), task(1234), 300)["excess_by_time"]
        last[name] = by_time[-1]
        if name == "ngrams-ff-seed0":
            assert by_time == sorted(by_time) and by_time[-1] > 2 * by_time[0]
    assert last["ngrams-ff-seed0"] > 2 * last["ngrams-lstm-seed0"]


class RowLogger(nn.Module):
    """Writes step t to row (t + offset) mod 128 with a weight of 1: a log of the sequence."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, inputs: torch.Tensor, trace: bool) -> tuple[object, ...]:
        T, B = inputs.shape[:2]
        rows = (torch.arange(T)[:, None] + self.offset + torch.zeros(B, dtype=torch.long)) % 128
        w = torch.nn.functional.one_hot(rows, 128).float()[:, :, None]  # (T, B, 1, N)
        return (None, None, SimpleNamespace(write_weightings=w))


def test_write_steps_tells_a_log_from_a_table():
    """A head that logs the sequence a row a step moves one row at every step and fills every
    row of a 200-step sequence (step 128 on overwrites); the table-keeping decayed LSTM NTM of
    seed 0 (docs/results/ngrams.md) writes to ~37 rows and moves one row at ~6% of steps."""
    a = write_steps(RowLogger(offset=100), task(), sequences=3)
    assert a == {"one_row": 1.0, "rows": 128.0, "largest": 1.0}
    _, model = load_model(ROOT / "docs/checkpoints/ngrams-lstm-default-seed0")
    m = write_steps(model.eval(), task(1234), 50)
    assert m["one_row"] < 0.2 and 20 < m["rows"] < 60


def test_main_refuses_another_task(capsys):
    with pytest.raises(SystemExit, match="an N-grams checkpoint expected, got a copy one"):
        main([str(ROOT / "docs/checkpoints/copy-lstm-seed0")])
