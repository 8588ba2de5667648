"""Shared helpers of the tests of the checkpoints committed under docs/checkpoints/."""

from __future__ import annotations

from pathlib import Path

from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.evaluate import evaluate

CHECKPOINTS = Path(__file__).resolve().parents[2] / "docs" / "checkpoints"


def two_stage_rows(name: str, first_steps: int, sequences: int) -> dict[str, dict]:
    """The evaluation rows (16 sequences each) of a committed two-stage repeat-copy run (first
    stage on 64 slots in stage1/, then the finishing stage on all 128), after checking both
    stages' configurations."""
    run = CHECKPOINTS / name
    first, last = (ckpt.load_checkpoint(d)["config"] for d in (run / "stage1", run))
    assert (first["train_memory_slots"], first["finish_steps"]) == (64, 10_000)
    assert first["steps"] == first_steps
    assert (last["train_memory_slots"], last["lr"], last["steps"]) == (0, 1e-4, 10_000)
    assert last["init_from"].endswith("stage1")
    result = evaluate(run, batches=1, batch_size=16, write=False)
    assert result["sequences_trained"] == sequences
    return {row["setting"]: row for row in result["rows"]}


def ngrams_excess(name: str, controller: str, sequences: int) -> float:
    """Bits per sequence above the optimal estimator of a committed N-grams checkpoint on 64
    evaluation sequences, after checking its controller and the sequences it trained on."""
    result = evaluate(CHECKPOINTS / name, batches=1, batch_size=64, write=False)
    assert (result["controller"], result["sequences_trained"]) == (controller, sequences)
    row = result["rows"][0]
    return row["bits_per_sequence"] - row["optimal_bits_per_sequence"]
