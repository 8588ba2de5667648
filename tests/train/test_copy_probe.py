"""tools/copy_spikes.py --probe: the forced-vector test behind docs/results/copy.md's account of
the copy spikes, run on a committed checkpoint."""

from __future__ import annotations

from pathlib import Path

from tools.copy_spikes import PROBE_POSITIONS, probe

CHECKPOINT = Path(__file__).resolve().parents[2] / "docs" / "checkpoints" / "copy-lstm-seed0"


def test_probe_counts_failures_per_forced_vector() -> None:
    per_position = 20
    result = probe([str(CHECKPOINT)], per_position)
    zeros, ones, n = result[str(CHECKPOINT)]
    assert n == per_position * len(PROBE_POSITIONS)
    # Seed 0 copied all 3,000 such sequences with an all-ones vector exactly (copy.md); a
    # target not forced with its input vector would leave ~4 wrong bits in every sequence.
    assert ones == 0
    assert 0 <= zeros <= n
