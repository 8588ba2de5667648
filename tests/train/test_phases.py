"""Training phases (ntm_fast/train/schedule.py): one run whose learning rate, schedule and
batch size change at given steps computes exactly what the same recipe run as several
``--resume`` commands computes, and the feedforward N-grams preset is that recipe."""

from __future__ import annotations

import dataclasses

import pytest
from committed import CHECKPOINTS
from tiny_run import CLI, log_rows, same_weights, tiny

from ntm_fast.train import TrainConfig, Trainer, UserError, config, objective
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.config import config_from_dict
from ntm_fast.train.schedule import at_step, describe_schedule, largest_batch, learning_rate
from ntm_fast.train.stages import finishing_config

PHASES = [{"until": 4}, {"until": 7, "lr_schedule": "cosine"}, {"batch_size": 5, "lr": 1e-3}]
BASE = dict(optimizer="rmsprop", batch_size=2, lr=3e-3, log_every=1, clip_spike=3.0)


def test_a_phased_run_equals_the_resumed_commands(tmp_path):
    """The recipe as three commands (steps 4, then --resume --steps 7 --lr-schedule cosine,
    then --resume --steps 10 --batch-size 5 --lr 1e-3 --lr-schedule constant) and as one
    phased run: the same log, row for row (sequences too), and bit-identical weights."""
    phased, staged = tmp_path / "phased", tmp_path / "staged"
    Trainer(tiny(phased, steps=10, phases=PHASES, **BASE)).run()
    Trainer(tiny(staged, steps=4, phases=[], **BASE)).run()
    last = {"steps": 10, "lr_schedule": "constant", "batch_size": 5, "lr": 1e-3}
    for overrides in ({"steps": 7, "lr_schedule": "cosine"}, last):
        Trainer(tiny(staged), resume=True, resume_overrides=overrides).run()
    rows = log_rows(phased)
    assert rows == log_rows(staged)
    assert [int(r[1]) for r in rows] == [2, 4, 6, 8, 10, 12, 14, 19, 24, 29]  # batch 5 from 7
    assert same_weights(ckpt.load_checkpoint(phased), ckpt.load_checkpoint(staged))


def test_a_phased_run_resumes_exactly(tmp_path):
    """Interrupted inside the second phase and resumed with --resume alone: as if straight."""
    straight, run = tmp_path / "straight", tmp_path / "run"
    Trainer(tiny(straight, steps=10, phases=PHASES, **BASE)).run()
    Trainer(tiny(run, steps=5, phases=PHASES, **BASE)).run()
    Trainer(tiny(run), resume=True, resume_overrides={"steps": 10}).run()
    assert log_rows(run) == log_rows(straight)
    assert same_weights(ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight))


def assert_phases_run_the_commands(c: TrainConfig, stages: list[tuple[int, TrainConfig]]) -> None:
    """At each stage's first, second, middle and last step, the phased config ``c`` trains
    at that stage's (one-phase) command's rate and batch; ``stages``: (end step, config)."""
    start = 0
    for end, stage in stages:
        stage = stage.resolved()
        stage.phases = []
        for step in (start, start + 1, (start + end) // 2, end - 1):
            now = at_step(c, step)
            assert now.batch_size == stage.batch_size
            assert learning_rate(now, step) == learning_rate(stage, step)
        start = end


def test_the_ngrams_feedforward_preset_is_the_three_command_recipe():
    """docs/results/ngrams.md's commands: 90k steps at the default; --resume --steps 150000
    --lr-schedule cosine; --resume --steps 180000 --batch-size 16 --lr 1e-5 --lr-schedule
    constant. Each step's rate and batch under the preset equal those commands'."""
    c = TrainConfig(task="ngrams", controller="feedforward").resolved()
    assert (c.steps, c.batch_size, c.lr, c.lr_schedule) == (180_000, 2, 3e-4, "constant")
    stages = [
        (90_000, TrainConfig(task="ngrams", controller="feedforward", steps=90_000)),
        (150_000, TrainConfig(task="ngrams", controller="feedforward", steps=150_000,
                              lr_schedule="cosine")),
        (180_000, TrainConfig(task="ngrams", controller="feedforward", steps=180_000,
                              batch_size=16, lr=1e-5, lr_schedule="constant")),
    ]  # fmt: skip
    assert_phases_run_the_commands(c, stages)
    assert learning_rate(at_step(c, 90_000), 90_000) < 0.35 * 3e-4  # the cosine's later part
    assert largest_batch(c) == 16
    assert "phases: to step 90000 as set; to step 150000: cosine; then to step 180000: " \
           "batch 16, lr 1e-05" in describe_schedule(c)  # fmt: skip
    assert c.write_follow_penalty == 0  # an option (session 36)


def test_the_write_follow_option_starts_as_the_committed_run(tmp_path):
    """docs/checkpoints/ngrams-ff-follow-seed8 was trained before --write-follow-penalty
    existed (through a wrapper sending the same term in by another flag): the default command
    with the option logs its first 100 steps as it did (to rounding: another CPU may sum in
    another order)."""
    out = tmp_path / "run"
    Trainer(TrainConfig(task="ngrams", controller="feedforward", seed=8, steps=100,
                        write_follow_penalty=0.01, out=str(out), plots=False,
                        progress=False)).run()  # fmt: skip
    ours = log_rows(out)
    theirs = log_rows(CHECKPOINTS / "ngrams-ff-follow-seed8")[: len(ours)]
    assert [r[:2] for r in ours] == [r[:2] for r in theirs] == [["50", "100"], ["100", "200"]]
    for a, b in zip(ours, theirs, strict=True):
        assert float(a[2]) == pytest.approx(float(b[2]), rel=1e-4)  # cost_bits


@pytest.mark.parametrize("controller", ["lstm", "baseline"])
def test_the_ngrams_lstm_preset_is_the_two_command_recipe(controller):
    """docs/results/ngrams.md (session 34): 90k steps at the constant 3e-4, then --resume
    --steps 150000 --lr-schedule cosine; the LSTM baseline has the same recipe."""
    c = TrainConfig(task="ngrams", controller=controller).resolved()
    assert (c.steps, c.batch_size, c.lr, c.lr_schedule) == (150_000, 2, 3e-4, "constant")
    assert_phases_run_the_commands(c, [
        (90_000, TrainConfig(task="ngrams", controller=controller, steps=90_000)),
        (150_000, TrainConfig(task="ngrams", controller=controller, steps=150_000,
                              lr_schedule="cosine")),
    ])  # fmt: skip
    assert c.batch_size == largest_batch(c) == 2
    assert learning_rate(at_step(c, 89_999), 89_999) == 3e-4
    assert 0.3 * 3e-4 < learning_rate(at_step(c, 90_000), 90_000) < 0.35 * 3e-4
    assert learning_rate(at_step(c, 149_999), 149_999) < 1e-8


def test_the_memory_check_uses_the_largest_batch(monkeypatch):
    seen = {}
    monkeypatch.setattr(objective, "check_training_fits", lambda *a, **kw: seen.update(kw))
    c = TrainConfig(task="ngrams", controller="feedforward").resolved()
    objective.check_task_fits({}, c, None)
    assert seen["batch_size"] == 16


def test_old_runs_keep_running_without_phases():
    """A checkpoint's config from before phases existed resumes as it was started, not with
    a preset's phases added since."""
    c = config_from_dict({"task": "ngrams", "controller": "feedforward"}, "old.pt").resolved()
    assert c.phases == []


@pytest.mark.parametrize(
    "phases, says",
    [
        ({"until": 3}, "phases: expected a list of dicts, got dict"),
        ([{"until": 3}, 5], "phases[1]: expected a dict, got int 5"),
        ([{"until": 3, "momentum": 0.9}, {}], "phases[0]: unknown settings ['momentum']"),
        ([{"lr": 1e-3}, {}], "phases[0]: 'until' should be a step (int) > 0"),
        ([{"until": 5}, {"until": 5}, {}], "phases[1]: 'until' should be a step (int) > 5"),
        ([{"until": 2.5}, {}], "got 2.5"),
        ([{"until": 3}, {"until": 6}], "phases[1]: the last phase ends at the run's steps"),
        ([{"lr": 0}], "phases[0]: 'lr' should be a finite number > 0, got 0"),
        ([{"lr": float("nan")}], "'lr' should be a finite number > 0, got nan"),
        ([{"lr_schedule": "linear"}], "phases[0]: 'lr_schedule' should be one of"),
        ([{"batch_size": 0}], "phases[0]: 'batch_size' should be an int >= 1, got 0"),
        ([{"batch_size": True}], "'batch_size' should be an int >= 1, got True"),
    ],
)
def test_bad_phases_are_refused_by_name(phases, says):
    with pytest.raises(UserError) as e:
        TrainConfig(task="ngrams", controller="feedforward", phases=phases).resolved()
    assert says in str(e.value)


def test_no_phases_flag(tmp_path, capsys):
    """--no-phases trains at the run's own settings throughout; on resume it drops a run's
    phases from then on, and the run's first line says so."""
    run = tmp_path / "run"
    args = ["train", "ngrams", "--controller", "feedforward", *CLI[:6], "--batch-size", "2",
            "--backend", "reference", "--no-progress", "--no-plots", "--out", str(run)]  # fmt: skip
    assert main([*args, "--steps", "2"]) == 0
    assert ckpt.load_checkpoint(run)["config"]["phases"][-1] == {"batch_size": 16, "lr": 1e-5}
    assert "phases: to step 90000" in capsys.readouterr().err
    assert main([*args, "--resume", "--steps", "4", "--no-phases"]) == 0
    assert "changed: --no-phases [] (was [{'until': 90000}" in capsys.readouterr().err
    assert ckpt.load_checkpoint(run)["config"]["phases"] == []
    fresh = tmp_path / "fresh"
    assert main([*args[:-1], str(fresh), "--steps", "2", "--no-phases"]) == 0
    assert ckpt.load_checkpoint(fresh)["config"]["phases"] == []
    assert "phases:" not in capsys.readouterr().err


def test_a_finishing_stage_does_not_inherit_the_first_stages_phases(monkeypatch):
    """A preset with both (none has yet): the finishing stage runs at its own settings."""
    real = config.preset

    def with_phases(task, controller="lstm"):
        p = real(task, controller)
        return dataclasses.replace(p, train={**p.train, "phases": PHASES})

    monkeypatch.setattr(config, "preset", with_phases)
    first = TrainConfig(task="repeat_copy", controller="feedforward").resolved()
    assert first.phases == PHASES and first.finish_steps > 0
    assert finishing_config(first, "out").resolved().phases == []


@pytest.mark.parametrize(
    "steps, says",
    [
        (2, "to step 90000 as set (this run ends at step 2)"),
        (90_000, "to step 90000 as set"),
        (100_000, "to step 90000 as set; to step 150000: cosine (this run ends at step 100000)"),
        (200_000, "to step 150000: cosine; then to step 200000: batch 16, lr 1e-05"),
    ],
)
def test_the_header_names_the_phases_this_run_reaches(steps, says):
    c = TrainConfig(task="ngrams", controller="feedforward", steps=steps).resolved()
    text = describe_schedule(c)
    assert text.endswith(says) and (steps > 150_000) == ("batch 16" in text)
