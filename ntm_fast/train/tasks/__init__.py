"""The paper's five tasks (section 4), each a seeded, batched, resumable generator.

``make_task(name, seed, **sizes)`` builds one by name; :data:`TASKS` maps names to classes.
Every task yields :class:`Batch` ``(inputs (T,B,F), targets (T,B,O), mask (T,B), lengths (B,))``.
"""

from __future__ import annotations

from typing import Any

from .associative_recall import AssociativeRecallTask
from .base import Batch, Task
from .copy import CopyTask
from .ngrams import NGramTask
from .priority_sort import PrioritySortTask
from .repeat_copy import RepeatCopyTask

TASKS: dict[str, type[Task]] = {
    "copy": CopyTask,
    "repeat_copy": RepeatCopyTask,
    "associative_recall": AssociativeRecallTask,
    "ngrams": NGramTask,
    "priority_sort": PrioritySortTask,
}


def make_task(name: str, seed: int = 0, **sizes: Any) -> Task:
    """The task called ``name`` (see :data:`TASKS`), seeded, with optional size overrides."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name](seed, **sizes)


__all__ = [
    "TASKS",
    "AssociativeRecallTask",
    "Batch",
    "CopyTask",
    "NGramTask",
    "PrioritySortTask",
    "RepeatCopyTask",
    "Task",
    "make_task",
]
