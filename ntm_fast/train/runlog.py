"""A run's ``log.csv`` (and TensorBoard scalars when tensorboard is installed).

On resume the log is cut back to the checkpoint: rows logged after the last checkpoint (by a
run that then crashed or was killed) are dropped, as is a half-written last line, so that the
resumed run's rows follow on and the file reads as one uninterrupted run (each step once).
TensorBoard's own ``purge_step`` does the same for its event files.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .config import UserError
from .rundir import STAGE1, file_error, write_text

CSV_FIELDS = ("step", "sequences", "cost_bits", "bit_errors", "seconds", "seq_per_s")


def read_log(path: str | Path) -> dict[str, list[float]]:
    """Columns of a run's log.csv as float lists; a malformed log is a UserError naming it."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return {k: [float(r[k]) for r in rows] for k in (rows[0].keys() if rows else [])}
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: not a well-formed training log: {exc}") from None


def moving_mean(values: list[float], windows: int) -> list[float]:
    """Each value averaged with the ``windows - 1`` before it (fewer at the start), so that a
    noisy curve (N-grams at batch 2) reads; ``windows`` = 1 returns the values."""
    return [sum(values[max(0, i + 1 - windows) : i + 1]) / min(i + 1, windows)
            for i in range(len(values))]  # fmt: skip


def read_run_log(path: str | Path) -> tuple[dict[str, list[float]], float | None]:
    """The columns of the log at ``path`` and, where it is a staged run's ``RUN/log.csv``, the
    first stage's rows (``RUN/stage1/log.csv``) before them - one curve, since the finishing
    stage's sequences continue the first stage's count - with the first stage's last logged
    sequence count, where the finishing stage takes over (``None`` for a one-stage run or one
    still in its first stage)."""
    path = Path(path)
    first = path.parent / STAGE1 / path.name
    if not first.is_file():
        return read_log(path), None
    cols = read_log(first)
    finish = read_log(path) if path.is_file() else {}
    if not finish.get("sequences"):
        return cols, None
    if not cols.get("sequences"):
        return finish, None
    if finish.keys() != cols.keys():
        raise UserError(f"{path}: its columns differ from the first stage's ({first})")
    return {k: v + finish[k] for k, v in cols.items()}, cols["sequences"][-1]


def truncate_log(path: Path, step: int) -> int:
    """Keep the header and the rows of ``path`` up to and including ``step`` (rows that do not
    parse are dropped); returns the number of rows removed. The rewrite is atomic."""
    with path.open(newline="") as f:
        text = f.read()
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != CSV_FIELDS:
        return 0  # not our log: leave it alone (the logger starts a new one)
    kept = [rows[0]]
    for row in rows[1:]:
        if len(row) == len(CSV_FIELDS) and _numbers(row) and int(row[0]) <= step:
            kept.append(row)
    removed = len(rows) - len(kept)
    if removed or not text.endswith("\n"):
        out = io.StringIO()
        csv.writer(out).writerows(kept)
        write_text(path, out.getvalue())
    return removed


def _numbers(row: list[str]) -> bool:
    try:
        int(row[0])
        for x in row[1:]:
            float(x)
    except ValueError:
        return False
    return True


class NullLogger:
    """What ranks other than 0 log to."""

    def write(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class Logger:
    """CSV log (always) and TensorBoard scalars (when tensorboard is installed).

    ``resume_step``: the step of the checkpoint a resumed run starts from (None for a new
    run); the log is truncated to it and appended to. A failed write raises
    :class:`ntm_fast.train.config.UserError` naming the file.
    """

    def __init__(self, out: Path, resume_step: int | None, resume_sequences: int = 0) -> None:
        self.path = path = out / "log.csv"
        try:
            fresh = resume_step is None or not path.is_file() or path.stat().st_size == 0
            if not fresh:
                truncate_log(path, resume_step)
                with path.open(newline="") as f:
                    fresh = tuple(next(csv.reader(f), ())) != CSV_FIELDS
            self.file = path.open("w" if fresh else "a", newline="")
            self.csv = csv.DictWriter(self.file, CSV_FIELDS)
            if fresh:
                self.csv.writeheader()
                self.file.flush()
        except OSError as exc:
            raise file_error(path, "write the training log", exc) from None
        try:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_sequences + 1
            self.tb: Any = SummaryWriter(str(out / "tensorboard"), purge_step=purge)
        except Exception:  # tensorboard not installed
            self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        try:
            self.csv.writerow(row)
            self.file.flush()
        except OSError as exc:
            raise file_error(self.path, "write the training log", exc) from None
        if self.tb is not None:
            for k in ("cost_bits", "bit_errors", "seq_per_s"):
                self.tb.add_scalar(k, row[k], row["sequences"])

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # a write error was already reported
        if self.tb is not None:
            self.tb.close()
