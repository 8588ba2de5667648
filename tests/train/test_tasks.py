"""The five task generators: layouts, invariants, statistics and reproducibility."""

import math

import pytest
import torch

from ntm_fast.train.tasks import (
    TASKS,
    AssociativeRecallTask,
    CopyTask,
    NGramTask,
    PrioritySortTask,
    RepeatCopyTask,
    make_task,
)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_shapes_dtypes_and_padding(name):
    task = make_task(name, 0)
    b = task.sample(7)
    T = b.inputs.shape[0]
    assert b.inputs.shape == (T, 7, task.input_size)
    assert b.targets.shape == (T, 7, task.output_size)
    assert b.mask.shape == (T, 7)
    assert b.inputs.dtype == b.targets.dtype == b.mask.dtype == torch.float32
    assert int(b.lengths.max()) == T
    past = torch.arange(T).unsqueeze(1) >= b.lengths  # padding: zero everything
    assert not b.inputs[past].any() and not b.targets[past].any() and not b.mask[past].any()
    # targets and mask are binary; targets only where the cost counts
    assert set(b.mask.unique().tolist()) <= {0.0, 1.0}
    assert not b.targets[b.mask == 0].any()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_seeded_and_resumable(name):
    a, b = make_task(name, 3), make_task(name, 3)
    assert all(torch.equal(x, y) for x, y in zip(a.sample(4), b.sample(4), strict=True))
    state = a.state_dict()
    first = a.sample(4)
    a.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(first, a.sample(4), strict=True))
    other = make_task(name, 4).sample(4)
    assert not torch.equal(
        first.inputs[: other.inputs.shape[0]], other.inputs[: first.inputs.shape[0]]
    )


def test_copy_layout():
    task = CopyTask(1, min_length=1, max_length=20)
    b = task.sample(64)
    assert int(b.lengths.min()) >= 3 and int(b.lengths.max()) <= 41
    for j in range(64):
        L = (int(b.lengths[j]) - 1) // 2
        x, y, m = b.inputs[:, j], b.targets[:, j], b.mask[:, j]
        assert torch.equal(y[L + 1 : 2 * L + 1], x[:L, :8])  # the copy
        assert x[L, 8] == 1 and x[L, :8].sum() == 0 and x[:, 8].sum() == 1  # delimiter only
        assert not x[L + 1 :].any()  # no input while the target is emitted
        assert m.sum() == L and m[L + 1 : 2 * L + 1].all()
    lengths = (b.lengths - 1) // 2
    assert lengths.min() >= 1 and lengths.max() <= 20


def test_copy_hold_delimiter_flags_the_output_steps_only():
    plain, held = CopyTask(3).sample(32), CopyTask(3, hold_delimiter=1).sample(32)
    assert torch.equal(plain.targets, held.targets) and torch.equal(plain.mask, held.mask)
    assert torch.equal(plain.inputs[..., :8], held.inputs[..., :8])  # same data, same stream
    for j in range(32):
        L, T = (int(held.lengths[j]) - 1) // 2, int(held.lengths[j])
        flag = held.inputs[:, j, 8]
        assert not flag[:L].any() and flag[L:T].eq(1).all() and not flag[T:].any()
    assert CopyTask(0).config() == {"bits": 8, "min_length": 1, "max_length": 20}
    assert CopyTask(0, hold_delimiter=1).config()["hold_delimiter"] == 1
    with pytest.raises(ValueError, match="hold_delimiter: expected 0 or 1"):
        CopyTask(0, hold_delimiter=2)


def test_repeat_copy_hold_delimiter_flags_through_the_end_marker():
    plain, held = RepeatCopyTask(4).sample(16), RepeatCopyTask(4, hold_delimiter=1).sample(16)
    assert torch.equal(plain.targets, held.targets) and torch.equal(plain.mask, held.mask)
    assert torch.equal(plain.inputs[..., [0, 1, 2, 3, 4, 5, 6, 7, 9]],
                       held.inputs[..., [0, 1, 2, 3, 4, 5, 6, 7, 9]])  # fmt: skip
    for j in range(16):
        end = int(held.targets[:, j, 8].argmax())  # the end-marker step
        L = int(plain.inputs[:, j, 8].argmax())  # the delimiter step
        flag = held.inputs[:, j, 8]
        assert not flag[:L].any() and flag[L : end + 1].eq(1).all() and not flag[end + 1 :].any()
    assert RepeatCopyTask(0, hold_delimiter=1).config()["hold_delimiter"] == 1
    assert "hold_delimiter" not in RepeatCopyTask(0).config()
    with pytest.raises(ValueError, match="hold_delimiter: expected 0 or 1"):
        RepeatCopyTask(0, hold_delimiter=True)


def test_copy_fixed_length_for_generalisation():
    b = CopyTask(0, min_length=120, max_length=120).sample(2)
    assert b.inputs.shape[0] == 241 and b.mask.sum(0).tolist() == [120, 120]


def test_repeat_copy_layout_and_count_normalisation():
    task = RepeatCopyTask(2)
    b = task.sample(256)
    counts = []
    for j in range(256):
        x, y, m = b.inputs[:, j], b.targets[:, j], b.mask[:, j]
        L = int((x[:, 8] == 1).nonzero())
        K = round(float(x[L, 9]) * math.sqrt(8.25) + 5.5)
        counts.append(float(x[L, 9]))
        assert 1 <= L <= 10 and 1 <= K <= 10
        assert torch.equal(y[L + 1 : L + 1 + L * K, :8], x[:L, :8].repeat(K, 1))
        end = L + 1 + L * K
        assert y[end, 8] == 1 and y[:, 8].sum() == 1 and not y[end, :8].any()
        assert m.sum() == L * K + 1 and int(b.lengths[j]) == end + 1
        assert not x[L + 1 :].any()
    c = torch.tensor(counts)
    assert abs(float(c.mean())) < 0.15 and abs(float(c.var()) - 1) < 0.15
    # exact normalisation of the training distribution 1..10
    z = task.normalise(torch.arange(1, 11))
    assert torch.allclose(z.mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(z.var(unbiased=False), torch.tensor(1.0), atol=1e-6)


def test_associative_recall_query_precedes_target():
    task = AssociativeRecallTask(5)
    b = task.sample(64)
    seen_items = set()
    for j in range(64):
        x, y, m = b.inputs[:, j], b.targets[:, j], b.mask[:, j]
        starts = (x[:, 6] == 1).nonzero().flatten().tolist()
        n = len(starts)
        seen_items.add(n)
        items = [x[s + 1 : s + 4, :6] for s in starts]
        qd = (x[:, 7] == 1).nonzero().flatten().tolist()
        assert len(qd) == 2 and qd[0] == 4 * n and qd[1] == qd[0] + 4
        query = x[qd[0] + 1 : qd[0] + 4, :6]
        matches = [i for i, it in enumerate(items) if torch.equal(it, query)]
        target = y[m == 1]
        assert target.shape == (3, 6) and (m == 1).nonzero().min() == qd[1] + 1
        # the target is the item right after (one of) the queried item(s)
        assert any(i + 1 < n and torch.equal(items[i + 1], target) for i in matches)
    assert seen_items == {2, 3, 4, 5, 6}


def test_associative_recall_longer_lists():
    b = AssociativeRecallTask(0, min_items=20, max_items=20).sample(2)
    assert b.inputs[:, :, 6].sum(0).tolist() == [20, 20]


def test_ngram_optimal_estimator_by_hand():
    task = NGramTask(0, n=3, length=8)  # context of 2 bits
    bits = torch.tensor([[0, 1, 1, 1, 0, 1, 1, 1]], dtype=torch.float32)
    p = task.optimal_probabilities(bits)[0].tolist()
    # t=2: ctx 01 unseen -> 1/2; sees 1. t=3: ctx 11 unseen -> 1/2; sees 1.
    # t=4: ctx 11 N1=1,N0=0 -> 1.5/2; sees 0. t=5: ctx 10 unseen -> 1/2; sees 1.
    # t=6: ctx 01 N1=1 -> 1.5/2; sees 1. t=7: ctx 11 N1=1,N0=1 -> 1.5/3.
    assert p == pytest.approx([0.5, 0.5, 0.5, 0.5, 0.75, 0.5, 0.75, 0.5])
    cost = float(task.optimal_cost(bits)[0])
    expected = -sum(math.log2(q if b else 1 - q) for q, b in zip(p, bits[0].tolist(), strict=True))
    assert cost == pytest.approx(expected)


def test_ngram_tables_fresh_per_sequence_and_beta_half_half():
    task = NGramTask(7)
    bits, table = task.sample_bits(400)
    assert bits.shape == (400, 200) and table.shape == (400, 32)
    assert not torch.equal(table[0], table[1])  # a new table for every sequence
    # Beta(1/2, 1/2): mean 1/2, variance 1/8, P(x < 0.1) = (2/π) asin(sqrt(0.1)) ≈ 0.205
    assert abs(float(table.mean()) - 0.5) < 0.01
    assert abs(float(table.var()) - 0.125) < 0.01
    assert abs(float((table < 0.1).float().mean()) - 0.2048) < 0.01
    # first 5 bits fair, the rest follow the table: empirical next-bit rate matches it
    assert abs(float(bits[:, :5].mean()) - 0.5) < 0.03
    ctx = torch.zeros(400, dtype=torch.long)
    for t in range(5):
        ctx = ctx * 2 + bits[:, t].long()
    probs = []
    for t in range(5, 200):
        probs.append(table[torch.arange(400), ctx])
        ctx = (ctx * 2 + bits[:, t].long()) % 32
    assert abs(float(bits[:, 5:].mean()) - float(torch.stack(probs).mean())) < 0.01
    # the optimal estimator beats coin flipping by a wide margin on these sequences
    assert float(task.optimal_cost(bits).mean()) < 160
    b = task.to_batch(bits[:2])
    assert torch.equal(b.inputs[1:, :, 0], b.targets[:-1, :, 0]) and b.inputs[0].sum() == 0


def test_priority_sort_order():
    task = PrioritySortTask(9)
    b = task.sample(32)
    assert b.inputs.shape[0] == 37
    for j in range(32):
        x, y = b.inputs[:, j], b.targets[:, j]
        prio = x[:20, 8]
        assert prio.min() >= -1 and prio.max() <= 1
        assert x[20, 9] == 1 and not x[21:].any()
        order = torch.argsort(prio, descending=True)[:16]
        assert torch.equal(y[21:], x[order, :8])
        assert (prio[order][:-1] >= prio[order][1:]).all()


@pytest.mark.parametrize(
    "kwargs", [dict(min_length=0), dict(min_length=5, max_length=4), dict(bits=True)]
)
def test_bad_sizes_rejected(kwargs):
    with pytest.raises((ValueError, TypeError)):
        CopyTask(0, **kwargs)


def test_unknown_task():
    with pytest.raises(ValueError, match="task: expected one of"):
        make_task("sorting", 0)
