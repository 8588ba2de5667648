"""Atomic, ``weights_only``-loadable training checkpoints.

A checkpoint holds only tensors, plain containers, numbers, strings, bools and None, so it
loads with ``torch.load(..., weights_only=True)`` (no pickled code runs). Writes go to a
temporary file in the same directory, are flushed to disk, then ``os.replace``d over the
target, so a crash mid-write never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "ntm_fast-checkpoint-v1"
_REQUIRED = ("format", "config", "model_config", "model", "optimizer", "task", "step")


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or of the wrong kind; says which file."""


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus the format tag) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({**payload, "format": FORMAT}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and sanity-check a checkpoint; raise :class:`CheckpointError` naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, disallowed pickle globals
        raise CheckpointError(
            f"{path}: not a readable ntm_fast checkpoint (truncated or corrupt?): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ntm_fast checkpoint (no '{FORMAT}' tag)")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return data


def load_model(path: str | os.PathLike[str], backend: str = "auto") -> tuple[dict[str, Any], Any]:
    """The checkpoint and its model (built by :func:`ntm_fast.presets.build_model`, weights
    loaded, on the CPU); a configuration/weights mismatch is a :class:`CheckpointError`."""
    from .presets import build_model

    state = load_checkpoint(path)
    try:
        model = build_model(state["model_config"], backend)
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: model weights do not match its configuration: {exc}"
        ) from None
    return state, model
