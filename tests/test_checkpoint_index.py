"""docs/checkpoints/README.md names every committed run directory and nothing else: a run
committed without its row (how it was trained) or a row whose run is gone fails here."""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINTS = Path(__file__).resolve().parents[1] / "docs" / "checkpoints"


def expand(cell: str) -> set[str]:
    """The run names of one table cell: `a-seed0` alone, `a-seed0` ... `seedK` (a range),
    or `a-seed0`, `-seed6` (more seeds of the same run name)."""
    names = re.findall(r"`([^`]+)`", cell)
    stem, first = re.fullmatch(r"(.+-seed)(\d+)", names[0]).groups()
    if "..." in cell:
        last = int(re.search(r"seed(\d+)$", names[-1]).group(1))
        return {f"{stem}{s}" for s in range(int(first), last + 1)}
    return {names[0], *(stem + n.removeprefix("-seed") for n in names[1:])}


def test_expand_forms() -> None:
    assert expand("`x-seed0` ... `seed2`") == {"x-seed0", "x-seed1", "x-seed2"}
    assert expand("`x-y-seed0` ... `x-y-seed1`") == {"x-y-seed0", "x-y-seed1"}
    assert expand("`x-seed0`, `-seed6`, `-seed8`") == {"x-seed0", "x-seed6", "x-seed8"}
    assert expand("`x-seed3`") == {"x-seed3"}


def test_readme_lists_exactly_the_committed_runs() -> None:
    listed: set[str] = set()
    for line in (CHECKPOINTS / "README.md").read_text().splitlines():
        if line.startswith("| `"):
            listed |= expand(line.split("|")[1])
    committed = {p.name for p in CHECKPOINTS.iterdir() if (p / "checkpoint.pt").is_file()}
    assert sorted(committed - listed) == [], "committed but not in docs/checkpoints/README.md"
    assert sorted(listed - committed) == [], "in docs/checkpoints/README.md but not committed"
