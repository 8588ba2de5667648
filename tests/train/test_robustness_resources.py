"""ntm_fast.resources: the training-memory estimate and the clear error before training."""

from __future__ import annotations

import time

import pytest
import torch
from tiny_run import tiny

from ntm_fast import FastNTM, ReferenceNTM
from ntm_fast.resources import (
    InsufficientMemoryError,
    available_bytes,
    check_training_fits,
    estimate_training_bytes,
)
from ntm_fast.train import objective
from ntm_fast.train.config_checks import PENALTIES

HUGE = dict(input_size=9, output_size=8, memory_slots=65536, memory_width=1024)


def test_huge_configuration_raises_immediately_without_allocating():
    start = time.perf_counter()
    with pytest.raises(InsufficientMemoryError) as info:
        check_training_fits(HUGE, batch_size=4096, steps=1000, device="cpu")
    assert time.perf_counter() - start < 0.5  # nothing of ~1 PB was built
    msg = str(info.value)
    est = estimate_training_bytes(HUGE, batch_size=4096, steps=1000)
    # names the estimate, the available memory and what to reduce
    assert f"{est['total'] / 2**30:.2f} GiB" in msg
    assert "available" in msg and "65536 x 1024" in msg
    for knob in ("batch size", "sequence length", "memory_slots", "memory_width"):
        assert knob in msg
    # ~ B·T·N·W·4 bytes: the memory per step dominates
    assert est["activations"] >= 4096 * 1000 * 65536 * 1024 * 4


def test_available_bytes_cpu_reads_proc_meminfo():
    free = available_bytes("cpu")
    assert free is None or free > 2**20


def test_small_configuration_fits():
    est = check_training_fits(dict(input_size=9, output_size=8), batch_size=16, steps=41)
    assert 0 < est["total"] < 2**30


def test_error_when_available_is_below_estimate():
    est = estimate_training_bytes(dict(input_size=9, output_size=8), batch_size=16, steps=41)
    check_training_fits(
        dict(input_size=9, output_size=8), batch_size=16, steps=41, available=2 * est["total"]
    )
    with pytest.raises(InsufficientMemoryError, match="at most ~"):
        check_training_fits(
            dict(input_size=9, output_size=8), batch_size=16, steps=41, available=est["total"]
        )


def test_skip_switch(monkeypatch):
    monkeypatch.setenv("NTM_FAST_SKIP_MEMORY_CHECK", "1")
    check_training_fits(HUGE, batch_size=4096, steps=1000, device="cpu")


def test_model_and_config_agree_and_parameter_count_is_exact():
    for cfg in (
        dict(controller="lstm", controller_layers=2, read_heads=2, write_heads=1),
        dict(controller="feedforward", shift_mode="uniform", shift_range=2),
    ):
        m = ReferenceNTM(5, 4, memory_slots=16, memory_width=6, controller_size=12, **cfg)
        a = estimate_training_bytes(m, batch_size=3, steps=7, optimizer_states=0)
        assert a == estimate_training_bytes(m.config, batch_size=3, steps=7, optimizer_states=0)
        n_params = sum(p.numel() for p in m.parameters())
        assert a["parameters"] == 2 * 4 * n_params  # weights + grads, float32


def test_scales_linearly_in_batch_and_steps():
    cfg = dict(input_size=9, output_size=8)
    one = estimate_training_bytes(cfg, batch_size=1, steps=1)
    big = estimate_training_bytes(cfg, batch_size=8, steps=10)
    assert big["activations"] == 80 * one["activations"]
    f64 = estimate_training_bytes(cfg, batch_size=8, steps=10, dtype=torch.float64)
    assert f64["total"] == 2 * big["total"]


def test_estimate_bounds_what_the_fused_path_saves():
    # the estimate's per-step activations cover what the fused path actually keeps per step
    # (the native whole-sequence op on the CPU, NTMSequence elsewhere)
    torch.manual_seed(0)
    m = FastNTM(5, 4, memory_slots=32, memory_width=8, controller_size=16, backend="native")
    B, T = 4, 10
    x = torch.rand(T, B, 5)
    logits, _ = m(x)
    node = logits.grad_fn
    if type(node).__name__ not in ("NTMSequenceBackward", "NativeSequenceBackward"):
        pytest.skip(f"the fused sequence path did not run ({type(node).__name__})")
    n_params = sum(p.numel() for p in m.parameters())
    saved = sum(t.numel() for t in node.saved_tensors if t is not None) - n_params  # + params
    est = estimate_training_bytes(m, batch_size=B, steps=T)
    assert saved * 4 <= est["activations"] + est["memory_state"]
    assert est["activations"] <= 3 * saved * 4  # and is not wildly pessimistic


def test_history_and_its_gradient_are_counted():
    cfg = dict(memory_slots=16, memory_width=6, controller_size=8, read_heads=2, write_heads=2)
    m = FastNTM(5, 4, **cfg)
    B, T = 3, 7
    _, _, h = m(torch.rand(T, B, 5), history=True)
    elements = h.weightings.numel() + h.memory.numel() + sum(t.numel() for t in h.heads)
    plain = estimate_training_bytes(m, batch_size=B, steps=T)
    more = estimate_training_bytes(m, batch_size=B, steps=T, history=True)
    assert more["activations"] - plain["activations"] == 2 * elements * 4  # float32
    assert more["total"] - plain["total"] == 2 * elements * 4


@pytest.mark.parametrize("penalty", [None, *PENALTIES])
def test_a_penalised_run_is_checked_with_its_history(tmp_path, monkeypatch, penalty):
    seen = {}
    monkeypatch.setattr(objective, "check_training_fits", lambda *a, **kw: seen.update(kw))
    c = tiny(tmp_path, **{**dict.fromkeys(PENALTIES, 0.0), **({penalty: 0.1} if penalty else {})})
    objective.check_task_fits(dict(input_size=9, output_size=8), c, torch.device("cpu"))
    assert seen["history"] is (penalty is not None)  # batch_loss asks for history=True


def test_training_command_refuses_a_step_that_cannot_fit(tmp_path, capsys):
    from ntm_fast.train.cli import main

    rc = main(["train", "copy", "--steps", "1", "--batch-size", "40000000", "--out",
               str(tmp_path / "run"), "--no-plots", "--no-progress"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "training needs about" in err and "batch 40000000" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
