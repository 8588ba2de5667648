"""Priority sort's resolution test: spaced priorities (PrioritySortTask(spacing=...)), the
errors binned by a target's priority gap to its nearest neighbour, and both in `ntm-fast eval`
(results/priority-sort.md: the NTMs' errors lie where two priorities nearly tie)."""

from __future__ import annotations

import math
import random
from itertools import pairwise

import pytest
import torch

from ntm_fast.train.evaluate import generalisation_settings
from ntm_fast.train.sort_analysis import (
    GAP_EDGES,
    errors_by_priority_gap,
    linear_placement_losses,
)
from ntm_fast.train.tasks import PrioritySortTask


@pytest.mark.parametrize(("inputs", "outputs", "spacing"), [(20, 16, 0.1), (20, 16, 0.03),
                                                            (5, 3, 0.5), (2, 1, 2.0)])  # fmt: skip
def test_spaced_priorities_are_a_permutation_of_evenly_spaced_levels(inputs, outputs, spacing):
    task = PrioritySortTask(3, inputs=inputs, outputs=outputs, spacing=spacing)
    batch = task.sample(64)
    prio = batch.inputs[:inputs, :, 8]
    assert prio.min() >= -1 and prio.max() <= 1
    steps = prio.sort(0).values.diff(dim=0)
    assert torch.allclose(steps, torch.full_like(steps, spacing), atol=1e-5)
    # the offsets differ between sequences (when the levels leave room), and so do the orders
    if spacing * (inputs - 1) < 1.9:
        assert prio.min(0).values.unique().numel() > 32
    orders = {tuple(prio[:, b].argsort().tolist()) for b in range(64)}
    assert len(orders) > min(32, math.factorial(inputs) - 1)
    # the targets are the vectors of highest priority, in descending order
    order = prio.argsort(0, descending=True)[:outputs]
    seq = batch.inputs[:inputs, :, :8]
    target = seq.gather(0, order.unsqueeze(-1).expand(-1, -1, 8))
    assert torch.equal(batch.targets[inputs + 1 :], target)


def test_spacing_zero_is_the_papers_task_unchanged():
    a, b = PrioritySortTask(5), PrioritySortTask(5, spacing=0)
    assert a.config() == b.config() == {"bits": 8, "inputs": 20, "outputs": 16}
    assert all(torch.equal(x, y) for x, y in zip(a.sample(8), b.sample(8), strict=True))
    assert PrioritySortTask(5, spacing=0.05).config()["spacing"] == 0.05


@pytest.mark.parametrize(("spacing", "error"), [(0.2, ValueError), (-0.01, ValueError),
                                                (math.nan, ValueError), (True, TypeError),
                                                ("0.1", TypeError)])  # fmt: skip
def test_bad_spacing_is_a_named_error(spacing, error):
    with pytest.raises(error, match="spacing"):
        PrioritySortTask(0, spacing=spacing)


def test_errors_are_binned_by_the_targets_gap_to_its_nearest_neighbour():
    # sequence 0: targets 0.9 (nearest 0.505: gap 0.395) and 0.505 (nearest 0.5: gap 0.005)
    # sequence 1: a tie at 0.2 (gap 0) and 0.7 (nearest 0.2: gap 0.5)
    prio = torch.tensor([[0.5, 0.2], [0.505, 0.7], [-0.3, 0.2], [0.9, -0.9]])
    wrong = torch.tensor([[0, 0], [3, 5]])  # (outputs, B): output 0 = highest priority
    rows = errors_by_priority_gap(prio, wrong, outputs=2)
    assert [(r["gap_from"], r["gap_to"]) for r in rows] == list(pairwise(GAP_EDGES))
    assert rows[0]["share"] == 0.5 and rows[0]["bit_errors_per_output"] == 4.0  # 3 and 5
    assert rows[-1]["share"] == 0.5 and rows[-1]["bit_errors_per_output"] == 0.0
    assert all(math.isnan(r["bit_errors_per_output"]) for r in rows[1:-1])
    assert sum(r["share"] for r in rows) == 1


def test_eval_settings_hold_priorities_apart_only_for_the_papers_distribution():
    base = {"name": "priority_sort", "bits": 8, "inputs": 20, "outputs": 16}
    labels = [label for label, _ in generalisation_settings(base)]
    assert labels == ["training distribution", "priorities 0.1 apart", "priorities 0.05 apart",
                      "priorities 0.03 apart"]  # fmt: skip
    assert generalisation_settings(base)[1][1]["spacing"] == 0.1
    # 40 inputs cannot be 0.1 apart within [-1, 1]: that row is left out, not an error
    wide = [label for label, _ in generalisation_settings({**base, "inputs": 40})]
    assert "priorities 0.1 apart" not in wide and "priorities 0.05 apart" in wide
    assert len(generalisation_settings({**base, "spacing": 0.05})) == 1


def test_eval_reports_spaced_rows_and_gap_errors(tmp_path):
    from tiny_run import tiny

    from ntm_fast.train import Trainer
    from ntm_fast.train.evaluate import evaluate, format_table

    overrides = {"inputs": 6, "outputs": 4}
    for controller, sizes in (("lstm", {}), ("baseline", {"model_overrides": {"hidden_size": 8}})):
        run = tmp_path / controller
        t = Trainer(tiny(run, task="priority_sort", task_overrides=overrides,
                         controller=controller, **sizes))  # fmt: skip
        t.train_step()
        t.save()
        t.close()
        result = evaluate(run, batches=1, batch_size=4, write=False)
        assert [r["setting"] for r in result["rows"]][1] == "priorities 0.1 apart"
        gaps = result["errors_by_gap"]
        assert abs(sum(r["share"] for r in gaps) - 1) < 1e-9
        assert "by its priority's gap" in format_table(result)


def _lost_by_hand(slots: int, sequences: int, rng: random.Random) -> float:
    lost = 0
    for _ in range(sequences):
        prio = [rng.uniform(-1, 1) for _ in range(20)]
        slot = [min(int((p + 1) / 2 * slots), slots - 1) for p in prio]
        top = set(sorted(range(20), key=lambda i: -prio[i])[:16])
        lost += sum(i in top and slot[i] in slot[i + 1 :] for i in range(20))
    return lost / sequences


def test_linear_placement_losses_match_a_plain_simulation_and_the_limits():
    # one slot: every write but the last is replaced; the last is a target 16 times in 20
    assert abs(linear_placement_losses(1, sequences=20_000) - (16 - 16 / 20)) < 0.02
    assert linear_placement_losses(10**7, sequences=20_000) < 0.01
    floor = linear_placement_losses(128, sequences=50_000)
    by_hand = _lost_by_hand(128, 4_000, random.Random(1))
    assert abs(floor - by_hand) < 0.1  # the hand count's standard error is ~0.017
    assert 1.05 < floor < 1.25  # results/priority-sort.md: 1.15 targets lost per sequence
    assert linear_placement_losses(256, sequences=50_000) < 0.6 * floor  # ~halves
