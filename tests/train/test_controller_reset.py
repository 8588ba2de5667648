"""``--controller-reset P`` (ntm_fast.train.objective.reset_step, reset_forward): with
probability P per batch the LSTM controller's state goes back to the model's initial state at
one random target step, the memory, reads and weightings carried on. Checked against a step
loop written here (float64), fast against reference (loss and gradients, with and without the
history), the draws, resume, the configuration's checks and the CLI."""

from __future__ import annotations

import pytest
import torch
from tiny_run import cli_repeat_copy, same_weights, tiny

from ntm_fast import FastNTM, ReferenceNTM
from ntm_fast.train import Trainer, UserError, distributed
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.config import APPLIED, config_from_dict
from ntm_fast.train.objective import batch_loss, reset_forward, reset_step, sequence_cost
from ntm_fast.train.schedule import describe_schedule
from ntm_fast.train.tasks import Batch, make_task

REPEAT = dict(task="repeat_copy", task_overrides={"max_length": 3, "max_repeats": 2})


def _batch(seed: int = 3, size: int = 3) -> Batch:
    batch = make_task("repeat_copy", seed, max_length=4, max_repeats=3).sample(size)
    return Batch(*(t.double() if t.is_floating_point() else t for t in batch))


def _pair(seed: int = 0):
    torch.manual_seed(seed)
    ref = ReferenceNTM(10, 9, memory_slots=8, memory_width=6, controller_size=16).double()
    return ref, FastNTM.from_reference(ref)


def _by_hand(model: ReferenceNTM, x: torch.Tensor, at: int) -> torch.Tensor:
    """The logits of a step loop that swaps in the initial controller state before step ``at``."""
    state, ops, out = model.initial_state(x.shape[1]), model.memory_ops(x.device), []
    for t in range(x.shape[0]):
        if t == at:
            state = state._replace(controller=model.initial_state(x.shape[1]).controller)
        logits, state, _ = model.step(x[t], state, ops)
        out.append(logits)
    return torch.stack(out)


def test_reset_step_draws_from_the_target_phase():
    batch = _batch()
    first_targets = batch.mask.argmax(0)  # each sequence's first target step
    lo, T = int(first_targets.max()), batch.mask.shape[0]
    assert T - 1 > lo  # this batch has room for a reset
    rng, twin = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    steps = [reset_step(batch, 1.0, rng) for _ in range(200)]
    assert all(lo <= t < T - 1 for t in steps) and len(set(steps)) == T - 1 - lo
    for t in steps:  # the draws: a uniform number, then the step
        assert float(torch.rand((), generator=twin)) < 1.0
        assert t == int(torch.randint(lo, T - 1, (), generator=twin))
    rng = torch.Generator().manual_seed(0)
    drawn = [reset_step(batch, 0.3, rng) is not None for _ in range(2000)]
    assert 0.25 < sum(drawn) / 2000 < 0.35
    one_target = Batch(batch.inputs, batch.targets, torch.zeros_like(batch.mask), batch.lengths)
    one_target.mask[-1] = 1  # a target phase of one step: nothing to reset within it
    assert reset_step(one_target, 1.0, torch.Generator()) is None
    with pytest.raises(ValueError, match=r"reset_rng: expected a torch\.Generator"):
        reset_step(batch, 0.5, None)


@pytest.mark.parametrize("at", [None, 5, -2])
def test_reset_forward_is_the_step_loop_with_the_state_swapped(at):
    ref, _ = _pair()
    x = _batch().inputs
    at = at % x.shape[0] if at is not None else None  # -2: before the last step but one
    logits = reset_forward(ref, ref, x, at, history=False)[0]
    plain = ref(x)[0]
    if at is None:
        assert torch.equal(logits, plain)
        return
    torch.testing.assert_close(logits, _by_hand(ref, x, at), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(logits[:at], plain[:at], rtol=1e-12, atol=1e-12)
    assert (logits[at:] - plain[at:]).abs().max() > 1e-3  # the reset changes what follows


@pytest.mark.parametrize("gate_penalty", [0.0, 0.3], ids=["plain", "with-history"])
def test_loss_and_gradients_fast_equal_reference_and_by_hand(gate_penalty):
    ref, fast = _pair(1)
    batch = _batch(4)
    results = []
    for model in (ref, fast):
        model.zero_grad()
        rng = torch.Generator().manual_seed(11)
        loss, cost, _ = batch_loss(model, model, batch, gate_penalty=gate_penalty,
                                   controller_reset=1.0, reset_rng=rng)  # fmt: skip
        loss.backward()
        results.append((loss, cost, [p.grad.clone() for p in model.parameters()]))
    at = reset_step(batch, 1.0, torch.Generator().manual_seed(11))
    assert at is not None
    ref.zero_grad()
    cost_by_hand = sequence_cost(_by_hand(ref, batch.inputs, at), batch)[0]
    (r_loss, r_cost, r_grads), (f_loss, f_cost, f_grads) = results
    torch.testing.assert_close(f_cost, r_cost, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(r_cost, cost_by_hand, rtol=1e-12, atol=1e-12)
    if not gate_penalty:
        assert r_loss is r_cost
        cost_by_hand.backward()
        for p, g in zip(ref.parameters(), r_grads, strict=True):
            torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-12)
    else:  # the penalty sees the history of both halves, as one sequence
        assert r_loss > r_cost
    # float64: the native whole-sequence op and the reference agree to rounding
    torch.testing.assert_close(f_loss, r_loss, rtol=1e-10, atol=1e-10)
    for a, b in zip(f_grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_history_is_both_halves_in_order():
    ref, _ = _pair()
    x = _batch().inputs
    _, _, whole = ref(x, history=True)
    _, _, joined = reset_forward(ref, ref, x, 5, history=True)
    assert joined.memory.shape == whole.memory.shape and joined.heads.add.shape[0] == x.shape[0]
    torch.testing.assert_close(joined.memory[:5], whole.memory[:5], rtol=0, atol=0)
    assert not torch.allclose(joined.heads.key[5:], whole.heads.key[5:])


def test_resume_is_exact_and_the_draws_are_in_the_checkpoint(tmp_path):
    assert "controller_reset" in APPLIED
    run, straight, plain = tmp_path / "run", tmp_path / "straight", tmp_path / "plain"
    Trainer(tiny(run, steps=3, **REPEAT, controller_reset=0.7)).run()
    assert isinstance(ckpt.load_checkpoint(run)["reset_rng"], torch.Tensor)
    Trainer(tiny(straight, steps=6, **REPEAT, controller_reset=0.7)).run()
    Trainer(tiny(run, **REPEAT, controller_reset=0.7), resume=True,
            resume_overrides={"steps": 6}).run()  # fmt: skip
    assert same_weights(ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight))
    Trainer(tiny(plain, steps=6, **REPEAT, controller_reset=0.0)).run()
    assert not same_weights(ckpt.load_checkpoint(plain), ckpt.load_checkpoint(straight))


def test_the_logged_cost_is_the_networks_under_the_reset(tmp_path):
    """What the step logs is the cost of the run with the reset (the one trained on)."""
    t = Trainer(tiny(tmp_path / "r", **REPEAT, controller_reset=1.0, batch_size=2))
    rng_state = t.reset_rng.get_state()
    task_state = t.task.state_dict()
    t.train_step()
    t.close()
    rng = torch.Generator()
    rng.set_state(rng_state)
    task = make_task("repeat_copy", 0, max_length=3, max_repeats=2)
    task.load_state_dict(task_state)
    batch = task.sample(2)
    model = Trainer(tiny(tmp_path / "s", **REPEAT, batch_size=2)).model  # same seed, weights
    _, cost, _ = batch_loss(model, model, batch, controller_reset=1.0, reset_rng=rng)
    torch.testing.assert_close(t.acc[0], cost.detach())


def test_config_checks_and_describes_it(tmp_path, monkeypatch):
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(UserError, match=r"controller_reset: expected 0 <= P <= 1, got"):
            tiny(tmp_path / "a", **REPEAT, controller_reset=bad).resolved()
    with pytest.raises(UserError, match=r"controller_reset: expected 0 for --controller "
                       r"feedforward, which has no LSTM state to reset, got 0.5"):  # fmt: skip
        tiny(tmp_path / "b", **REPEAT, controller="feedforward",
             controller_reset=0.5).resolved()  # fmt: skip
    with pytest.raises(UserError, match=r"controller_reset: expected 0 for --controller baseline"):
        tiny(tmp_path / "c", **REPEAT, controller="baseline", controller_reset=0.5,
             model_overrides={"hidden_size": 16}).resolved()  # fmt: skip
    c = tiny(tmp_path / "d", **REPEAT, controller_reset=0.5).resolved()
    assert "controller state reset with probability 0.5" in describe_schedule(c)
    default = tiny(tmp_path / "e", **REPEAT).resolved()  # the LSTM repeat-copy preset's
    assert default.controller_reset == 0.25
    assert "reset with probability 0.25" in describe_schedule(default)
    copy = tiny(tmp_path / "e").resolved()
    assert copy.controller_reset == 0.0 and "reset" not in describe_schedule(copy)
    old = config_from_dict({"task": "repeat_copy", "controller": "lstm"}, "old.pt")
    assert old.controller_reset == 0.0  # a checkpoint from before the field trained without it
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(UserError, match=r"controller_reset: expected 0 with torchrun, got 0.5"):
        Trainer(tiny(tmp_path / "f", **REPEAT, controller_reset=0.5))


def test_cli_flag_reaches_the_run_and_the_finishing_stage(tmp_path, capsys):
    from ntm_fast.train.stages import finishing_config

    printed, config = cli_repeat_copy(tmp_path / "run", capsys, "--controller-reset", "0.3")
    assert "controller state reset with probability 0.3" in printed
    assert config["controller_reset"] == 0.3
    first = tiny(tmp_path, **REPEAT, controller_reset=0.5, finish_steps=4).resolved()
    assert finishing_config(first, str(tmp_path / "finish")).controller_reset == 0.5
