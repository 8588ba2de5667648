"""``--write-penalty X``, ``--read-penalty X``, ``--gate-penalty X``,
``--read-entropy-penalty X`` and ``--write-follow-penalty X``
(ntm_fast.train.objective.batch_loss): the loss adds X times the squared change of each
sequence's memory over its target phase (target_memory_change), of what its read heads see there
(target_read_change), the write heads' interpolation gate there (target_write_gate), the entropy
of the read heads' weightings (target_read_entropy) or the write weightings' cross-entropy
against the step before's read weightings (target_write_follow), all computed from the model's
differentiable history; the fast path's loss and gradients equal the reference's; resume stays
exact; bad values are named; the logged cost stays the task's."""

from __future__ import annotations

import pytest
import torch
from tiny_run import CLI, same_weights, tiny

from ntm_fast import FastNTM, ReferenceNTM
from ntm_fast.train import Trainer, UserError
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.config import APPLIED, config_from_dict
from ntm_fast.train.config_checks import LOSS_TERMS, PENALTIES
from ntm_fast.train.objective import (
    batch_loss,
    sequence_cost,
    target_memory_change,
    target_read_change,
    target_read_entropy,
    target_write_follow,
    target_write_gate,
)
from ntm_fast.train.schedule import describe_schedule, penalties
from ntm_fast.train.tasks import Batch, make_task


def test_target_memory_change_by_hand():
    # T = 4 steps, B = 3: targets at steps 2-3, 1-1 and none
    mask = torch.tensor([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.float32)
    lengths = torch.tensor([4, 2, 3])
    batch = Batch(torch.zeros(4, 3, 1), torch.zeros(4, 3, 1), mask, lengths)
    memory = torch.arange(5 * 3, dtype=torch.float32).view(5, 3, 1, 1) ** 2  # before step 0, after
    m = memory[:, :, 0, 0]
    by_hand = [(m[4, 0] - m[2, 0]) ** 2, (m[2, 1] - m[1, 1]) ** 2, 0.0]  # no target: no change
    torch.testing.assert_close(target_memory_change(memory, batch), sum(by_hand) / 3)


def test_target_read_change_by_hand():
    # T = 3 steps, B = 2, one read head over N = 2 rows of width 1: sequence 0 has targets at
    # steps 1-2 (memory before them: after step 0), sequence 1 none
    mask = torch.tensor([[0, 0], [1, 0], [1, 0]], dtype=torch.float32)
    batch = Batch(torch.zeros(3, 2, 1), torch.zeros(3, 2, 1), mask, torch.tensor([3, 3]))
    memory = torch.zeros(4, 2, 2, 1)
    memory[2, 0, 1] = 3.0  # step 1 writes 3 into row 1 of sequence 0 ...
    memory[3, 0, 0] = 5.0  # ... step 2 writes 5 into row 0 (read by no target step after it)
    memory[1:, 1] = 7.0  # sequence 1 changes everything, but has no target step
    w = torch.tensor([[0.5, 0.5], [0.0, 1.0], [0.25, 0.75]]).view(3, 1, 1, 2).expand(3, 2, 1, 2)
    # step 1 reads M_0 (unchanged); step 2 reads M_1 = row 1 changed by 3, with weight 0.75
    expected = (0.75 * 3.0) ** 2 / 2
    torch.testing.assert_close(target_read_change(memory, w, batch), torch.tensor(expected))


def test_target_write_gate_by_hand():
    # T = 3, B = 2, two write heads: sequence 0 has targets at steps 1-2, sequence 1 at step 0
    mask = torch.tensor([[0, 1], [1, 0], [1, 0]], dtype=torch.float32)
    batch = Batch(torch.zeros(3, 2, 1), torch.zeros(3, 2, 1), mask, torch.tensor([3, 3]))
    gates = torch.tensor([[[0.9, 0.8], [0.1, 0.2]], [[0.3, 0.4], [0.5, 0.5]],
                          [[0.25, 0.0], [1.0, 1.0]]])  # fmt: skip
    expected = ((0.3 + 0.4) + (0.25 + 0.0) + (0.1 + 0.2)) / 2  # step 0 of 0, 1-2 of 1: off
    torch.testing.assert_close(target_write_gate(gates, batch), torch.tensor(expected))


def test_target_read_entropy_by_hand():
    # T = 2, B = 2, two read heads over N = 4 rows: sequence 0 has a target at step 1,
    # sequence 1 at both steps
    mask = torch.tensor([[0, 1], [1, 1]], dtype=torch.float32)
    batch = Batch(torch.zeros(2, 2, 1), torch.zeros(2, 2, 1), mask, torch.tensor([2, 2]))
    one_row, two_rows, uniform = [1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4
    w = torch.tensor([[[uniform, uniform], [one_row, two_rows]],
                      [[two_rows, uniform], [one_row, one_row]]])  # (T, B, R, N)  # fmt: skip
    ln2, ln4 = torch.tensor(2.0).log(), torch.tensor(4.0).log()
    expected = ((ln2 + ln4) + (0 + ln2) + 0) / 2  # step 0 of sequence 0 is no target
    torch.testing.assert_close(target_read_entropy(w, batch), expected)
    w.requires_grad_(True)
    target_read_entropy(w, batch).backward()  # finite where a weight is exactly 0
    assert torch.isfinite(w.grad).all()


def test_target_write_follow_by_hand():
    # T = 3, B = 2, two read heads and one write head over N = 2 rows (the write head pairs
    # with the first read head only): sequence 0 has targets at steps 1-2, sequence 1 at step 0
    mask = torch.tensor([[0, 1], [1, 0], [1, 0]], dtype=torch.float32)
    batch = Batch(torch.zeros(3, 2, 1), torch.zeros(3, 2, 1), mask, torch.tensor([3, 3]))
    w = torch.zeros(3, 2, 3, 2)
    w[..., 1, :] = 0.5  # the second read head: unpaired, so it never counts
    w[:, 0, 0] = torch.tensor([[1.0, 0.0], [0.25, 0.75], [0.5, 0.5]])  # read, sequence 0
    w[:, 0, 2] = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])  # write, sequence 0
    w[:, 1, 0], w[:, 1, 2] = 0.5, 0.5  # sequence 1: its only target is step 0, which has no
    floor = 1e-4  # step before, so it never counts
    step1 = -(1.0 * torch.tensor(1.0 + floor).log() + 0.0)  # read at 0 vs write at 1
    step2 = -(0.25 * torch.tensor(floor).log() + 0.75 * torch.tensor(1.0 + floor).log())
    torch.testing.assert_close(target_write_follow(w, 2, batch), (step1 + step2) / 2)
    w.requires_grad_(True)
    target_write_follow(w, 2, batch).backward()
    assert torch.isfinite(w.grad).all() and w.grad[..., :2, :].abs().sum() == 0  # reads: none
    assert w.grad[1:, 0, 2].abs().sum() > 0


def _pair(controller: str, read_heads: int = 1):
    torch.manual_seed(0)
    ref = ReferenceNTM(9, 8, memory_slots=8, memory_width=6, controller=controller,
                       controller_size=16, read_heads=read_heads).double()  # fmt: skip
    return ref, FastNTM.from_reference(ref)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
@pytest.mark.parametrize(
    "mix",
    [
        (0.5, 0, 0, 0, 0),
        (0, 0.5, 0, 0, 0),
        (0, 0, 0.5, 0, 0),
        (0, 0, 0, 0.5, 0),
        (0, 0, 0, 0, 0.5),
        (0.5, 2.0, 0.3, 0.1, 0.2),
    ],
    ids=str,
)
def test_fast_loss_and_gradients_equal_the_reference(controller, mix):
    ref, fast = _pair(controller, read_heads=2)  # two read heads: the history's first two
    task = make_task("copy", 3, max_length=5)
    batch = Batch(*(t.double() if t.is_floating_point() else t for t in task.sample(4)))
    results = []
    for model in (ref, fast):
        model.zero_grad()
        loss, cost, _ = batch_loss(model, model, batch, **dict(zip(PENALTIES, mix, strict=True)))
        loss.backward()
        results.append((loss, cost, [p.grad for p in model.parameters()]))
    (r_loss, r_cost, r_grads), (f_loss, f_cost, f_grads) = results
    assert r_loss > r_cost  # the penalty is there and positive
    torch.testing.assert_close(f_loss, r_loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f_cost, r_cost, rtol=1e-10, atol=1e-10)
    for a, b in zip(f_grads, r_grads, strict=True):  # float64: both exact to rounding
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    if mix[0]:  # its gradient reaches the initial memory (its change from step 0 counts)
        assert ref.memory_bias.grad.abs().sum() > 0


def test_off_is_the_plain_cost():
    ref, _ = _pair("lstm")
    batch = make_task("copy", 1, max_length=4).sample(3)
    ref.float()
    loss, cost, errors = batch_loss(ref, ref, batch, 0.0, 0.0, 0.0, 0.0, 0.0)
    expected = sequence_cost(ref(batch.inputs)[0], batch)
    assert loss is cost and torch.equal(cost, expected[0]) and torch.equal(errors, expected[1])


DESCRIBED = {"write_penalty": "write penalty", "read_penalty": "read-change penalty",
             "gate_penalty": "write-gate penalty",
             "read_entropy_penalty": "read-entropy penalty",
             "write_follow_penalty": "write-follows-read penalty"}  # fmt: skip


def test_every_penalty_is_tested():
    assert set(DESCRIBED) == set(PENALTIES)


@pytest.mark.parametrize("field", PENALTIES)
def test_the_logged_cost_leaves_the_penalty_out(tmp_path, field):
    logged = []
    for name, penalty in (("off", 0.0), ("on", 100.0)):
        t = Trainer(tiny(tmp_path / name, **{field: penalty}))
        t.train_step()  # the first step's cost is computed before any update
        t.close()
        logged.append(t.acc[0] / t.acc[2])
    assert torch.equal(logged[0], logged[1])


@pytest.mark.parametrize("field", PENALTIES)
def test_resume_is_exact_and_may_change_it(tmp_path, field):
    assert field in APPLIED
    on = {field: 0.5}
    run, straight = tmp_path / "run", tmp_path / "straight"
    Trainer(tiny(run, steps=3, **on)).run()
    Trainer(tiny(straight, steps=6, **on)).run()
    Trainer(tiny(run, **on), resume=True, resume_overrides={"steps": 6}).run()
    assert same_weights(ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight))
    plain = tmp_path / "plain"
    Trainer(tiny(plain, steps=6, **{field: 0.0})).run()
    assert not same_weights(ckpt.load_checkpoint(plain), ckpt.load_checkpoint(straight))


@pytest.mark.parametrize("field", PENALTIES)
def test_config_checks_and_describes_it(tmp_path, field):
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(UserError, match=rf"{field}: expected a finite X >= 0, got"):
            tiny(tmp_path / "a", **{field: bad}).resolved()
    with pytest.raises(UserError, match=rf"{field}: expected 0 \(the baseline has no"):
        tiny(tmp_path / "b", controller="baseline", **{field: 0.1},
             model_overrides={"hidden_size": 16}).resolved()  # fmt: skip
    c = tiny(tmp_path / "c", **{field: 0.1}).resolved()
    assert f"target-phase {DESCRIBED[field]} 0.1" in describe_schedule(c)
    off = tiny(tmp_path / "d", **{field: 0}).resolved()
    assert DESCRIBED[field] not in describe_schedule(off)
    old = config_from_dict({"task": "copy", "controller": "lstm"}, "old.pt")
    assert getattr(old, field) == 0.0  # a checkpoint from before the field trained without it


@pytest.mark.parametrize("field", PENALTIES)
def test_cli_flag_reaches_the_run(tmp_path, capsys, field):
    out = tmp_path / "run"
    flag = "--" + field.replace("_", "-")
    assert main(["train", "copy", *CLI, "--steps", "2", flag, "0.25",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert f"target-phase {DESCRIBED[field]} 0.25" in printed.out + printed.err
    assert ckpt.load_checkpoint(out)["config"][field] == 0.25


@pytest.mark.parametrize("field", PENALTIES)
def test_they_start_at_penalty_from(tmp_path, field):
    runs, none = {}, dict.fromkeys(PENALTIES, 0.0)  # not the preset's (copy: the gate's)
    for name, kw in {"off": {}, "late": {field: 5.0, "penalty_from": 4},
                     "from 2": {field: 5.0, "penalty_from": 2}}.items():  # fmt: skip
        Trainer(tiny(tmp_path / name, steps=4, **{**none, **kw})).run()
        runs[name] = ckpt.load_checkpoint(tmp_path / name)
    assert same_weights(runs["off"], runs["late"])  # steps 0-3: before its first step
    assert not same_weights(runs["off"], runs["from 2"])
    with pytest.raises(UserError, match=r"penalty_from: expected a step >= 0, got -1"):
        tiny(tmp_path / "bad", penalty_from=-1).resolved()
    c = tiny(tmp_path / "c", **{**none, field: 0.1}, penalty_from=5000).resolved()
    assert f"target-phase {DESCRIBED[field]} 0.1, penalties from step 5000" in describe_schedule(c)
    assert "penalty_from" in APPLIED
    assert penalties(c, 4999) == LOSS_TERMS  # batch_loss's keywords, all off
    assert penalties(c, 5000) == {**LOSS_TERMS, field: 0.1}
    old = config_from_dict({"task": "copy", "controller": "lstm"}, "old.pt")
    assert old.penalty_from == 0


def test_write_penalty_from_is_its_old_name(tmp_path, capsys):
    old = config_from_dict({"task": "copy", "controller": "lstm", "write_penalty_from": 7}, "o")
    assert old.penalty_from == 7  # checkpoints from before session 22
    out = tmp_path / "run"
    assert main(["train", "copy", *CLI, "--steps", "2", "--write-penalty", "0.1",
                 "--write-penalty-from", "1", "--out", str(out)]) == 0  # fmt: skip
    assert ckpt.load_checkpoint(out)["config"]["penalty_from"] == 1


def test_the_finishing_stage_keeps_them(tmp_path):
    from ntm_fast.train.stages import finishing_config

    first = tiny(tmp_path, task="repeat_copy", controller="feedforward", task_overrides={},
                 write_penalty=0.2, penalty_from=7, read_penalty=0.3,
                 gate_penalty=0.4).resolved()  # fmt: skip
    assert first.finish_steps > 0  # the preset has a finishing stage
    second = finishing_config(first, str(tmp_path / "finish"))
    kept = (second.write_penalty, second.penalty_from, second.read_penalty)
    assert (*kept, second.gate_penalty) == (0.2, 7, 0.3, 0.4)
