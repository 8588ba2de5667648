"""The copy spikes' cause (docs/results/copy.md, copy-blanked-vectors.md): tools/copy_spikes.py
--probe, the committed networks trained with the delimiter held through the output
(``--task-arg hold_delimiter=1``), and those trained with blanked vectors against fair bits."""

from __future__ import annotations

from pathlib import Path

import pytest
from committed import CHECKPOINTS

from ntm_fast.train.evaluate import evaluate
from tools.copy_spikes import PROBE_POSITIONS, probe

HELD = [CHECKPOINTS / f"copy-hold-lstm-seed{s}" for s in range(8)]
ZEROS = [str(CHECKPOINTS / f"copy-zeros10-lstm-seed{s}") for s in range(4)]
FAIR_BITS = [str(CHECKPOINTS / f"copy-fair-lstm-seed{s}") for s in range(4)]  # to session 16
BLANKED_5K = [str(CHECKPOINTS / f"copy-blanked5k-lstm-seed{s}") for s in range(4)]  # sessions 17-18
#: copy.md's probe of 3,000 sequences: inexact copies with a forced all-zero vector
ZERO_VECTOR_FAILURES = [0, 0, 0, 0, 11, 0, 2, 0]


def test_probe_counts_failures_per_forced_vector() -> None:
    run = str(CHECKPOINTS / "copy-fair-lstm-seed0")
    zeros, ones, n = probe([run], 20)[run]
    assert n == 20 * len(PROBE_POSITIONS)
    # Seed 0 copied all 3,000 such sequences with an all-ones vector exactly (copy.md); a
    # target not forced with its input vector would leave ~4 wrong bits in every sequence.
    assert ones == 0
    assert 0 <= zeros <= n


@pytest.mark.parametrize("run", HELD, ids=lambda r: r.name)
def test_held_delimiter_networks_copy_zero_vectors_and_length_120(run: Path) -> None:
    result = evaluate(run, batches=1, batch_size=8, write=False)
    assert result["sequences_trained"] == 30_000
    rows = {row["setting"]: row for row in result["rows"]}
    assert rows["length 120"]["bit_errors_per_sequence"] == 0.0
    # copy.md: 0-11 of 3,000 zero-vector sequences wrong (the paper's layout: 8-113); 150
    # such sequences here, so a network that failed as often as seed 6's default (4%) would
    # fail ~6 of them
    zeros, ones, n = probe([str(run)], 25)[str(run)]
    assert ones == 0 and zeros <= 1 + ZERO_VECTOR_FAILURES[HELD.index(run)] * n // 3000


def test_blanked_vectors_in_training_teach_the_zero_vector_fair_bits_do_not() -> None:
    """copy-blanked-vectors.md: of 3,000 probe sequences each, the four networks trained with
    10% of vectors blanked (``--task-arg zero_vector_percent=10``) copy every zero-vector one;
    the default's fair-bit networks miss 8-49 (100 in all, 3.3%). Here 600 each: ~20 misses
    expected from the fair-bit ones, none from the others."""
    blanked = probe(ZEROS, 100)
    fair = probe(FAIR_BITS, 100)
    assert sum(zeros for zeros, _, _ in blanked.values()) == 0
    assert sum(zeros for zeros, _, _ in fair.values()) >= 5
    assert all(ones == 0 for _, ones, _ in blanked.values())


def test_a_blanked_start_keeps_the_zero_vector() -> None:
    """copy-blanked-vectors.md: blanked for the first 5,000 of its 30,000 sequences, the LSTM
    default of sessions 17-18 misses 8 of 12,000 zero-vector probe sequences (all in seed 1;
    the fair-bit default of sessions 5-16: 100). 600 each here: these miss 1, the fair-bit
    ones 35."""
    default = probe(BLANKED_5K, 100)
    assert sum(zeros for zeros, _, _ in default.values()) <= 2


def test_the_lstm_defaults_copy_zero_vector_sequences() -> None:
    """copy-weight-decay.md, copy-gate-penalty.md, copy-forget-bias.md: the default of sessions
    19-21 (the blanked start and weight decay on the controller) misses none of 12,000
    zero-vector probe sequences; session 22's (with the write-gate penalty) 32 (0, 9, 3 and 20
    per seed, 0.27%); the default since session 23 (the forget-gate bias too) none. 600 each
    here (a fixed stream): session 22's miss 4 (~6 expected), the others none; a network
    failing as often as the fair-bit default (0.8%) would miss ~20."""
    names = ("copy-decay-lstm-seed", "copy-gate-lstm-seed", "copy-lstm-seed")
    runs = {name: [str(CHECKPOINTS / f"{name}{s}") for s in range(4)] for name in names}
    found = {name: probe(paths, 100) for name, paths in runs.items()}
    missed = {name: sum(zeros for zeros, _, _ in r.values()) for name, r in found.items()}
    assert missed["copy-decay-lstm-seed"] <= 1 and missed["copy-lstm-seed"] <= 1
    assert missed["copy-gate-lstm-seed"] <= 10
    assert all(ones == 0 for r in found.values() for _, ones, _ in r.values())


@pytest.mark.parametrize("name", ["copy-ff-seed", "copy-ff-nogate-seed"])
def test_the_feedforward_default_copies_zero_vector_sequences(name: str) -> None:
    """copy-blanked-vectors.md, copy-gate-penalty.md: the eight feedforward networks trained
    with blanked vectors (the feedforward copy default, with the write-gate penalty since
    session 22, without it before) miss 1 of 24,000 zero-vector probe sequences each set; on
    fair bits four of eight missed ~17%. 300 each here."""
    runs = [str(CHECKPOINTS / f"{name}{s}") for s in range(8)]
    assert sum(zeros for zeros, _, _ in probe(runs, 50).values()) <= 1
