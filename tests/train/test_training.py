"""The training loop: cost goes down, resume is bit-identical, checkpoints fail clearly."""

import csv
import itertools

import pytest
import torch

from ntm_fast.train import (
    TrainConfig,
    Trainer,
    UserError,
    describe_schedule,
    learning_rate,
    sequence_cost,
)
from ntm_fast.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ntm_fast.train.presets import build_model, preset
from ntm_fast.train.tasks import Batch

TINY = dict(memory_slots=8, memory_width=6, controller_size=16)


def tiny(out, **kw):
    base = dict(task="copy", steps=6, batch_size=4, lr=3e-3, seed=1, out=str(out),
                model_overrides=dict(TINY), task_overrides={"max_length": 3},
                checkpoint_every=1000, log_every=2, plots=False, progress=False,
                backend="reference", optimizer="adam", clip_norm=0.0, clip_spike=0.0,
                lr_schedule="constant")  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_sequence_cost_in_bits_matches_bce():
    logits = torch.tensor([[[0.0, 2.0]], [[-1.0, 1.0]]])  # (T=2, B=1, O=2)
    targets = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    mask = torch.tensor([[0.0], [1.0]])
    cost, errors = sequence_cost(logits, Batch(logits, targets, mask, torch.tensor([2])))
    expected = torch.nn.functional.softplus(torch.tensor(-1.0)) * 2  # only step 1 counts
    assert float(cost) == pytest.approx(float(expected))
    assert float(errors) == 0.0


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 1e-2), ("rmsprop", 3e-3)])
def test_a_few_steps_reduce_the_cost(tmp_path, optimizer, lr):
    cfg = tiny(tmp_path, steps=60, optimizer=optimizer, lr=lr, log_every=20, batch_size=8,
               task_overrides={"max_length": 2, "bits": 2})  # fmt: skip
    Trainer(cfg).run()
    with open(tmp_path / "log.csv") as f:
        costs = [float(r["cost_bits"]) for r in csv.DictReader(f)]
    assert len(costs) == 3
    assert costs[-1] < 0.75 * costs[0], costs


def test_baseline_trains_through_the_same_loop(tmp_path):
    cfg = tiny(tmp_path, controller="baseline", model_overrides={"hidden_size": 8}, steps=2)
    summary = Trainer(cfg).run()
    assert summary["step"] == 2 and (tmp_path / "checkpoint.pt").exists()


def test_warmup_ramps_linearly_then_holds():
    c = TrainConfig(lr=2e-3, warmup_steps=4, lr_schedule="constant").resolved()
    lrs = [learning_rate(c, step) for step in range(6)]
    assert lrs == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3, 2e-3])
    plain = TrainConfig(lr=2e-3, warmup_steps=0, lr_schedule="constant").resolved()
    assert learning_rate(plain, 0) == learning_rate(plain, 5999) == 2e-3


def test_cosine_schedule_decays_to_zero_at_the_last_step():
    c = TrainConfig(lr=1.0, warmup_steps=2, steps=12, lr_schedule="cosine").resolved()
    lrs = [learning_rate(c, step) for step in range(14)]
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])  # warm-up, then the cosine's start
    assert lrs[7] == pytest.approx(0.5)  # halfway through the 10 steps after warm-up
    assert all(a > b for a, b in itertools.pairwise(lrs[2:13]))
    assert lrs[12] == lrs[13] == pytest.approx(0.0)


def test_optimizer_sees_the_scheduled_lr_and_clipped_norm(tmp_path, monkeypatch):
    seen = []
    t = Trainer(tiny(tmp_path, warmup_steps=3, clip_norm=1e-3, lr=3e-3, lr_schedule="constant"))
    step = t.optimizer.step

    def spy(*a, **k):
        norm = torch.nn.utils.get_total_norm([p.grad for p in t.model.parameters()])
        seen.append((t.optimizer.param_groups[0]["lr"], float(norm)))
        return step(*a, **k)

    monkeypatch.setattr(t.optimizer, "step", spy)
    for _ in range(4):
        t.train_step()
    assert [lr for lr, _ in seen] == pytest.approx([1e-3, 2e-3, 3e-3, 3e-3])
    assert all(norm <= 1e-3 * (1 + 1e-5) for _, norm in seen), seen


@pytest.mark.parametrize(
    ("field", "value"), [("clip_norm", -1.0), ("warmup_steps", -5), ("lr_schedule", "step")]
)
def test_negative_schedule_settings_are_refused(field, value):
    with pytest.raises(UserError, match=field):
        TrainConfig(**{field: value}).resolved()


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_resume_is_bit_identical(tmp_path, optimizer):
    """Steps 1-3 + resumed 4-6 == 6 uninterrupted steps, exactly: constant lr, where the run
    may also be extended (3 steps, then resumed with steps=6)."""
    full = Trainer(tiny(tmp_path / "full", optimizer=optimizer, steps=6))
    full.run()
    Trainer(tiny(tmp_path / "split", optimizer=optimizer, steps=3)).run()
    resumed = Trainer(tiny(tmp_path / "split", optimizer=optimizer), resume=True,
                      resume_overrides={"steps": 6})  # fmt: skip
    assert resumed.step == 3
    resumed.run()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    assert torch.equal(full.task.generator.get_state(), resumed.task.generator.get_state())
    logs = [(tmp_path / d / "log.csv").read_text() for d in ("full", "split")]
    last = [log.splitlines()[-1].split(",")[:4] for log in logs]  # not the timings
    assert last[0] == last[1]


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_interrupted_scheduled_run_resumes_exactly(tmp_path, optimizer):
    """A run of 6 steps with warm-up, cosine decay and norm clipping, stopped at step 3 (by
    stop_cost, as Ctrl-C or --minutes would) and resumed, equals the uninterrupted run: the
    schedule is a function of the step and of ``steps``, which did not change."""
    sched = dict(optimizer=optimizer, steps=6, warmup_steps=1, clip_norm=0.5,
                 lr_schedule="cosine", log_every=3)  # fmt: skip
    full = Trainer(tiny(tmp_path / "full", **sched))
    full.run()
    first = Trainer(tiny(tmp_path / "split", stop_cost=1e9, **sched))
    assert first.run()["reason"] == "stop_cost" and first.step == 3
    resumed = Trainer(tiny(tmp_path / "split", **sched), resume=True,
                      resume_overrides={"stop_cost": None})  # fmt: skip
    assert resumed.step == 3 and resumed.config.stop_cost is None
    resumed.run()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    lr_at = [learning_rate(resumed.config, step) for step in range(6)]
    assert len(set(lr_at[1:])) == 5  # the decay really was active on both sides of the split


def test_interrupt_saves_a_checkpoint(tmp_path, monkeypatch):
    t = Trainer(tiny(tmp_path, steps=10))
    real = t.train_step

    def step_then_interrupt():
        if t.step == 4:
            raise KeyboardInterrupt
        real()

    monkeypatch.setattr(t, "train_step", step_then_interrupt)
    summary = t.run()
    assert summary["reason"] == "interrupted"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4


def test_existing_run_needs_resume(tmp_path):
    Trainer(tiny(tmp_path, steps=1)).run()
    from ntm_fast.train import UserError

    with pytest.raises(UserError, match="--resume"):
        Trainer(tiny(tmp_path, steps=1))


def test_corrupt_and_truncated_checkpoints_name_the_file(tmp_path):
    Trainer(tiny(tmp_path, steps=1)).run()
    good = (tmp_path / "checkpoint.pt").read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt"):
        load_checkpoint(bad)
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"truncated\.pt"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match=r"missing\.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_mismatched_checkpoint_is_reported(tmp_path):
    Trainer(tiny(tmp_path, steps=1)).run()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    state["config"]["model_overrides"] = {}
    state["model"]["memory_bias"] = torch.zeros(3, 3)
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    with pytest.raises(CheckpointError, match="does not match"):
        Trainer(tiny(tmp_path), resume=True)
    from ntm_fast.train.evaluate import evaluate

    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: model weights do not match"):
        evaluate(tmp_path, batches=1, batch_size=1, backend="reference")
    with pytest.raises(CheckpointError, match="controller='lstm'"):
        Trainer(tiny(tmp_path, controller="feedforward"), resume=True)


def test_presets_match_tables():
    p = preset("associative_recall", "feedforward")
    assert p.model["read_heads"] == p.model["write_heads"] == 4
    assert p.model["controller_size"] == 256 and p.paper_lr == 1e-4
    assert preset("priority_sort", "lstm").model["controller_layers"] == 2
    assert preset("ngrams", "baseline").model["hidden_size"] == 128
    m = build_model(preset("copy", "lstm").model, backend="reference")
    total = m.parameter_counts()["total"]
    assert abs(total - preset("copy", "lstm").paper_parameters) / total < 0.05


def test_copy_defaults_clip_the_norm_and_spikes_and_decay():
    c = TrainConfig(task="copy").resolved()
    assert (c.optimizer, c.lr, c.batch_size, c.steps) == ("rmsprop", 3e-4, 2, 15000)
    assert (c.clip_norm, c.clip_spike, c.lr_schedule, c.warmup_steps, c.clip) == (
        10.0, 3.0, "cosine", 0, 10.0,
    )  # fmt: skip
    assert describe_schedule(c) == (
        "cosine, clip |g| 10, clip |g| to 3x its mean, controller weight decay 0.3, "
        "target-phase write-gate penalty 0.02, clip g_i 10"
    )  # copy-gate-penalty.md: 0.02 for the LSTM, 0.05 for the feedforward controller
    ff = TrainConfig(task="copy", controller="feedforward").resolved()
    assert (ff.gate_penalty, ff.weight_decay, c.gate_penalty) == (0.05, 0.0, 0.02)
    other = TrainConfig(task="associative_recall").resolved()
    assert (other.clip_norm, other.clip_spike, other.lr_schedule) == (0.0, 0.0, "constant")


def test_repeat_copy_baseline_defaults_are_its_converged_recipe():
    """docs/results/repeat-copy.md#lstm-baseline: Adam 1e-3, batch 16, 15k constant steps
    (240k sequences), with the task's clipping; no memory to train on fewer slots."""
    c = TrainConfig(task="repeat_copy", controller="baseline").resolved()
    assert (c.optimizer, c.lr, c.batch_size, c.steps, c.lr_schedule) == (
        "adam", 1e-3, 16, 15_000, "constant",
    )  # fmt: skip
    assert (c.clip_norm, c.clip_spike, c.train_memory_slots, c.finish_steps) == (10.0, 3.0, 0, 0)


def test_ctrl_c_stops_at_a_step_boundary_and_saves(tmp_path, monkeypatch):
    import signal

    t = Trainer(tiny(tmp_path, steps=10))
    real = t.train_step

    def step_and_press_ctrl_c():
        real()
        if t.step == 3:
            signal.raise_signal(signal.SIGINT)  # delivered mid-step: the step still completes

    monkeypatch.setattr(t, "train_step", step_and_press_ctrl_c)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when started in the background
    assert t.run()["reason"] == "interrupted"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
