"""Model presets from the paper's Tables 1-3, and the one factory that builds every model.

``preset(task, controller)`` gives a :class:`Preset`: the model configuration (a plain dict a
checkpoint can store), the paper's learning rate and parameter count, and the defaults this
package trains with on a CPU (see docs/training.md for why they differ from the paper's).

"#Heads" in Tables 1-2 is read as that many read heads *and* that many write heads. The
memory is 128 x 20 throughout. The LSTM-controller priority-sort row's "2 x 100" is a
two-layer controller of 100 units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..fast import FastNTM
from .baseline import DeepLSTM
from .tasks import TASKS

CONTROLLERS = ("lstm", "feedforward", "baseline")

# task: (heads, controller size, controller layers, learning rate, paper #parameters)
_FEEDFORWARD = {  # Table 1
    "copy": (1, 100, 1, 1e-4, 17_162),
    "repeat_copy": (1, 100, 1, 1e-4, 16_712),
    "associative_recall": (4, 256, 1, 1e-4, 146_845),
    "ngrams": (1, 100, 1, 3e-5, 14_656),
    "priority_sort": (8, 512, 1, 3e-5, 508_305),
}
_LSTM = {  # Table 2
    "copy": (1, 100, 1, 1e-4, 67_561),
    "repeat_copy": (1, 100, 1, 1e-4, 66_111),
    "associative_recall": (1, 100, 1, 1e-4, 70_330),
    "ngrams": (1, 100, 1, 3e-5, 61_749),
    "priority_sort": (5, 100, 2, 3e-5, 269_038),
}
_BASELINE = {  # Table 3: (layers, hidden, learning rate, paper #parameters)
    "copy": (3, 256, 3e-5, 1_352_969),
    "repeat_copy": (3, 512, 3e-5, 5_312_007),
    "associative_recall": (3, 256, 1e-4, 1_344_518),
    "ngrams": (3, 128, 1e-4, 331_905),
    "priority_sort": (3, 128, 3e-5, 384_424),
}

# CPU training defaults (measured on a 2-core CPU, docs/results/, docs/copy-recipes.md).
# Copy: with the whole-sequence op a batch-2 step is cheap, and Graves's RMSProp at batch 2
# reaches 0.05 bits in ~4k sequences against ~70k for Adam at batch 32; the cosine decay and
# --clip-spike 3 keep single hard sequences (an all-zero input vector) from knocking the
# converged network back to chance (without it 10 of 24 runs relapsed to 25-150 bits).
# Priority sort: the same small-batch recipe left the plateau Adam at batch 32 had not left in
# 200k sequences (120 bits) and fell below 40 bits within 100k (docs/results/priority-sort.md).
# Repeat copy: with it and a row per slot the feedforward NTM learned in 80k sequences and
# the LSTM one in 270k (Adam at batch 32, norm clipped to 5: 230k); with the shared initial
# memory row (below) the LSTM one is below 0.01 bits by 64k (40k steps at a constant rate on
# 128 slots: 2 of 10 seeds generalise to length 20; a 75k-step cosine run of seed 0 did not).
# N-grams: 1.00 and 1.31 bits above the optimal estimator (seeds 0, 1) against Adam's 8.2.
# Associative recall: Adam with a batch of 32.
# Repeat copy, LSTM controller: trained on 64 of its 128 slots (config.py), the output wraps
# around the memory in training, and the write head learns to leave the stored sequence alone:
# 20 x 10 errors of seeds 0-5 0.0-3.6% against 0.01-18% on 128 (seeds 6-9 worse: two did not
# learn in 80k sequences; results/repeat-copy.md). Decayed along a cosine over 50k steps
# instead of 40k at a constant rate, more seeds generalise to length 20 (session 10, seeds
# 0-9: 4 within 1% against 2, median 1.2% against 2.6%; 3 not learned against 2); over 100k
# steps every seed learns (session 11: 5 of 10 within 1%, median 0.93%; two early learners
# lose, seeds 1 and 6). The
# feedforward NTM's end marker then depends on the slot count, so after its steps on 64 slots
# a finishing stage (stages.py) of 10k steps on all 128, from those weights with a fresh
# optimiser, teaches it the 128-slot end (on 128 alone: none of 6 within 1% at 20 x 10).
# Its first stage decays over 150k steps: seeds 0-14 within 1% at 20 x 10 in 12 of 15, not
# learned in 2 (over 75k, the default of sessions 10-24: 9 of 15, not learned in 3;
# docs/results/repeat-copy-feedforward.md, session 25).
# Repeat copy, LSTM controller, since session 28: some batches put the controller's state back
# to its initial state at a random target step (objective.reset_forward), so the count of
# repeats must be recoverable from the memory; the LSTM otherwise holds it in its cell, where
# it leaks over long sequences (the end marker a repeat early at 20 x 10). Like the
# feedforward NTM's, its end marker then depends on the slot count: the same finishing stage.
# Seeds 0-14, both repeat-copy targets: a quarter of the batches (session 29) 11 of 15,
# learned at a median of 41k sequences; half (session 28) 9, 51k; none (sessions 11-27) 7,
# 39k (docs/results/repeat-copy-controller-reset.md).
# Repeat copy: with a learned row per slot the network tells written from unwritten slots by
# the slots' own learned contents, which it only learns for the positions trained on (1-10),
# and fails at length 20; one learned row shared by every slot makes that test the same at
# every position (docs/results/repeat-copy.md, session 7).
_MEMORY_INIT = {"repeat_copy": "shared"}
# Added to the LSTM controller's forget-gate biases at initialisation (0: torch's draw alone).
# Copy: over seeds 0-31 no loss spike after converging in 29 (without: 23) and that with length
# 120 exact in 28 (21), at the same speed (docs/results/copy-forget-bias.md, session 23).
_FORGET_BIAS: dict[tuple[str, str], float] = {("copy", "lstm"): 1.0}
# N-grams: 90k steps at a constant rate, then a cosine decay to step 150k (from the point of a
# curve ending there, 0.35 of the rate): the LSTM NTM from 0.65, 1.41 and 1.08 bits above the
# optimal estimator at 90k (seeds 0-2) to 0.07, 0.63 and 0.64; the baseline from 6.80 to 4.28
# (docs/results/ngrams.md, session 34).
_NGRAMS_PHASES = [{"until": 90_000}, {"lr_schedule": "cosine"}]
_SMALL_BATCH = dict(optimizer="rmsprop", lr=3e-4, batch_size=2, clip_norm=10.0, clip_spike=3.0)
_CPU_DEFAULTS: dict[str, dict[str, Any]] = {
    "copy": dict(_SMALL_BATCH, steps=15000, lr_schedule="cosine"),
    "repeat_copy": dict(_SMALL_BATCH, steps=100_000, lr_schedule="cosine", train_memory_slots=64),
    "associative_recall": {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "steps": 10000},
    "ngrams": dict(_SMALL_BATCH, steps=150_000, lr_schedule="constant", phases=_NGRAMS_PHASES),
    "priority_sort": dict(_SMALL_BATCH, steps=300_000, lr_schedule="cosine"),
}
_FINISH_ON_ALL_SLOTS = dict(
    steps=10_000, train_memory_slots=0, lr=1e-4, lr_schedule="cosine", warmup_steps=500
)
# Where a controller needs other defaults than its task's (results/repeat-copy.md: the
# feedforward NTM is still at ~5 bits after the LSTM one's 80k sequences at a constant rate).
# Copy, feedforward controller: with no state of its own, on fair bits it cannot tell an
# all-zero data vector from the output phase's blank input (5 of 8 seeds miss 17-100% of
# such sequences) and copies length 120 in none of 8; with 10% of the training vectors blanked
# (tasks/copy.py; training only) it misses 1 of 24,000 and copies length 120 in 6 of 16
# (docs/results/copy-blanked-vectors.md). The LSTM controller blanks only its first 5,000
# sequences, enough to learn the zero vector for good: over seeds 0-31 no logged spike after
# converging in 20 (fair bits: 2) and length 120 exact in 21 (fair: 17). Weight decay 0.3
# on its controller's matrices (optim.py) keeps the cell state small: no spike in 28 of 32
# (without: 20), length 120 exact in 21 still (docs/results/copy-weight-decay.md).
# Copy: a penalty on the write head's interpolation gate over the output phase
# (objective.target_write_gate) keeps it writing where it wrote before instead of by content,
# which at length 120 spreads its writes over unread rows (docs/results/copy-gate-penalty.md).
# LSTM, 0.02, seeds 0-31: length 120 exact in 28 (without: 21), badly failed in 1 (11), no
# spike after converging in 23 (28), both in 21 (19). Feedforward, 0.05, seeds 0-15: exact 12
# (6), badly failed 0 (9), no spike 11 (9).
# N-grams, feedforward controller: 90k steps at the task's constant rate leave it 3.9-6.0 bits
# above the optimal estimator; a cosine decay to step 150k (from the point of a curve ending
# there) and then 30k steps of batch 16 at a constant 1e-5 bring seeds 0, 2 and 3 to 1.9-2.4
# (docs/results/ngrams.md; measured as three --resume commands; schedule.py: the same steps).
# --write-follow-penalty 0.01 (objective.target_write_follow: write where the step before
# read, the paper's Fig. 15) took seed 8 from 5.07 to 0.49 bits above optimal, seed 4 from
# 8.27 (300k) to 0.67 and seed 1 from 11.39 to 8.07 (300k), but seeds 0, 2 and 3 fell back
# to chance on the way (3.93, 34.5, 18.4 at 300k against 2.04, 2.17, 2.56), so it is an
# option (docs/results/ngrams-write-follows-read.md).
_NGRAMS_FF_PHASES = [{"until": 90_000}, {"until": 150_000, "lr_schedule": "cosine"},
                     {"batch_size": 16, "lr": 1e-5}]  # fmt: skip
_CONTROLLER_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("repeat_copy", "feedforward"): dict(steps=150_000, finish=_FINISH_ON_ALL_SLOTS),
    ("repeat_copy", "lstm"): dict(controller_reset=0.25, finish=_FINISH_ON_ALL_SLOTS),
    ("ngrams", "feedforward"): dict(steps=180_000, phases=_NGRAMS_FF_PHASES),
    # Repeat copy, LSTM baseline: the task's small-batch RMSProp had it at 49 bits after 62k
    # sequences (113 min); Adam at 1e-3 with a batch of 16 converges (below 1 bit after 134k
    # sequences, as the paper's Fig. 7 LSTM; docs/results/repeat-copy.md#lstm-baseline).
    ("repeat_copy", "baseline"): dict(
        optimizer="adam", lr=1e-3, batch_size=16, steps=15_000, lr_schedule="constant"
    ),
    ("copy", "feedforward"): dict(task_args={"zero_vector_percent": 10}, gate_penalty=0.05),
    ("copy", "lstm"): dict(
        task_args={"zero_vector_percent": 10, "zero_vector_until": 5000},
        weight_decay=0.3,
        gate_penalty=0.02,
    ),
}


@dataclass(frozen=True)
class Preset:
    """One row of Tables 1-3 plus this package's CPU training defaults."""

    task: str
    controller: str
    model: dict[str, Any]  # {"kind": "ntm" | "lstm", **constructor kwargs}
    paper_lr: float
    paper_parameters: int
    train: dict[str, Any] = field(default_factory=dict)


def preset(task: str, controller: str = "lstm") -> Preset:
    """The configuration of ``task`` with ``controller`` ("lstm", "feedforward" or
    "baseline" for the plain deep LSTM of Table 3)."""
    if task not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {task!r}")
    if controller not in CONTROLLERS:
        raise ValueError(f"controller: expected one of {CONTROLLERS}, got {controller!r}")
    t = TASKS[task]()
    io = {"input_size": t.input_size, "output_size": t.output_size}
    if controller == "baseline":
        layers, hidden, lr, count = _BASELINE[task]
        model = {"kind": "lstm", **io, "hidden_size": hidden, "layers": layers, "gate_biases": 1}
    else:
        table = _LSTM if controller == "lstm" else _FEEDFORWARD
        heads, size, layers, lr, count = table[task]
        model = {
            "kind": "ntm", **io, "memory_slots": 128, "memory_width": 20,
            "read_heads": heads, "write_heads": heads, "controller": controller,
            "controller_size": size, "controller_layers": layers,
            "memory_init": _MEMORY_INIT.get(task, "per_slot"),
            "forget_bias": _FORGET_BIAS.get((task, controller), 0.0),
        }  # fmt: skip
    defaults = {**_CPU_DEFAULTS[task], **_CONTROLLER_DEFAULTS.get((task, controller), {})}
    return Preset(task, controller, model, lr, count, defaults)


def build_model(model: dict[str, Any], backend: str = "auto") -> nn.Module:
    """Build a model from a preset's ``model`` dict: the one place the model class is chosen.

    NTMs are :class:`ntm_fast.FastNTM` (``backend="auto"`` runs the fastest available kernels,
    the reference ops until a native build exists); ``kind == "lstm"`` is :class:`DeepLSTM`.
    """
    kwargs = dict(model)
    kind = kwargs.pop("kind", "ntm")
    if kind == "lstm":
        kwargs.setdefault("gate_biases", 2)  # configs saved before the option: torch's two
        return DeepLSTM(**kwargs)
    if kind != "ntm":
        raise ValueError(f"model kind: expected 'ntm' or 'lstm', got {kind!r}")
    return FastNTM(**kwargs, backend=backend)


def parameter_table(model: nn.Module, paper: int) -> str:
    """Parameter count per component beside the paper's total, as printable lines."""
    counts = model.parameter_counts()  # type: ignore[operator]
    lines = [f"  {k:<14}{v:>12,}" for k, v in counts.items() if k != "total"]
    lines.append(f"  {'total':<14}{counts['total']:>12,}   (paper: {paper:,})")
    return "\n".join(lines)
