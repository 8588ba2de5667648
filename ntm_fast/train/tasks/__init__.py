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


def task_options(task_config: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``task_config`` (a task's ``config()`` plus ``name``) that differ from
    its task's defaults."""
    cfg = dict(task_config)
    defaults = make_task(cfg.pop("name"), 0).config()
    return {k: v for k, v in cfg.items() if defaults.get(k) != v}


def split_training_only(task_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``task_config`` (a task's ``config()`` plus ``name``) apart: the settings evaluation
    keeps, and the training-only ones (:data:`Task.training_only`) it drops, so that a
    network is tested on the paper's distribution whatever its training stream emphasised."""
    only = TASKS[task_config["name"]].training_only if task_config.get("name") in TASKS else ()
    kept = {k: v for k, v in task_config.items() if k not in only}
    return kept, {k: v for k, v in task_config.items() if k in only}


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
    "split_training_only",
    "task_options",
]
