"""Atomic, checksummed, ``weights_only``-loadable training checkpoints.

A checkpoint holds only tensors, plain containers, numbers, strings, bools and None, so it
loads with ``torch.load(..., weights_only=True)`` (no pickled code runs). Writes go to a
temporary file in the same directory, are flushed to disk, then ``os.replace``d over the
target, so a crash mid-write never leaves a half-written checkpoint under the real name.

Integrity: the payload carries a SHA-256 of its whole content (every tensor's dtype, shape
and bytes, every key, number and string, in order; :func:`content_checksum`), computed before
writing and verified on every load, so a flipped bit, a bad copy or a hand edit is a
:class:`CheckpointError` naming the file instead of silently changed weights or optimiser
state. Checkpoints of the previous format (``ntm_fast-checkpoint-v1``, written before
checksums) still load, with a warning that their content cannot be verified; the next save
of a resumed run writes the current format.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ..memory_size import grow_memory_state
from .config import UserError, config_from_dict
from .presets import build_model

CHECKPOINT = "checkpoint.pt"  # its file name in a run directory
FORMAT = "ntm_fast-checkpoint-v2"
LEGACY_FORMATS = ("ntm_fast-checkpoint-v1",)  # no checksum
_REQUIRED = ("format", "config", "model_config", "model", "optimizer", "task", "step")
#: what each field of a training checkpoint must be: (accepted types, description)
FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "config": ((dict,), "a dict"),
    "model_config": ((dict,), "a dict"),
    "task_config": ((dict,), "a dict"),
    "model": ((dict,), "a dict of tensors"),
    "optimizer": ((dict,), "a dict"),
    "task": ((dict,), "a dict"),
    "torch_rng": ((torch.Tensor,), "a uint8 tensor"),
    "reset_rng": ((torch.Tensor,), "a uint8 tensor"),
    "step": ((int,), "an int >= 0"),
    "sequences": ((int,), "an int >= 0"),
    "elapsed": ((int, float), "a number of seconds"),
    "log_acc": ((torch.Tensor,), "a tensor of 3 numbers"),
    "paper_parameters": ((int, type(None)), "an int or None"),
    "grad_norm_mean": ((torch.Tensor, type(None)), "a scalar tensor or None"),
    "nonfinite_steps": ((int,), "an int >= 0"),
    "arithmetic": ((dict,), "a dict of strings (torch, cpu, gpu)"),
}
#: the fields a training run reads to resume exactly
RESUME_FIELDS = ("config", "model_config", "task_config", "model", "optimizer", "task",
                 "torch_rng", "step", "sequences", "elapsed", "log_acc")  # fmt: skip


#: fields a checkpoint may lack (written by later versions), checked when present
OPTIONAL_FIELDS = frozenset({"grad_norm_mean", "nonfinite_steps", "arithmetic", "reset_rng"})


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or of the wrong kind; says which file."""


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}:".encode())
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}:".encode())
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, (str, bytes)):
        b = obj.encode() if isinstance(obj, str) else obj
        h.update(f"{'S' if isinstance(obj, str) else 'Y'}{len(b)}:".encode() + b)
    elif isinstance(obj, float):
        h.update(f"F{obj.hex()};".encode())
    elif obj is None or isinstance(obj, (bool, int)):
        h.update(f"{type(obj).__name__}{obj!r};".encode())
    else:
        h.update(f"R{type(obj).__name__}{obj!r};".encode())


def content_checksum(payload: dict[str, Any]) -> str:
    """``"sha256:<hex>"`` of every entry of ``payload`` except ``"checksum"``."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != "checksum"})
    return "sha256:" + h.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus the format tag and its checksum) to ``path``.
    An ``OSError`` (full or read-only disk) propagates; the previous file is untouched and
    the temporary file removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**payload, "format": FORMAT}
    data.pop("checksum", None)
    data["checksum"] = content_checksum(data)
    return atomic_write(path, lambda f: torch.save(data, f), binary=True)


def _file_mode(path: Path) -> int:
    """The permissions a plain ``open(path, "w")`` would leave: the replaced file's own, else
    0666 less the process umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO], None], *, binary: bool = False
) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then
    ``os.replace`` it onto ``path``: readers see the old file or the whole new one. Any
    exception (``OSError`` from a full or read-only disk, an interrupt) leaves the previous file
    untouched and no temporary file behind."""
    path = Path(path)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp's 0600 would hide the file from the user's group
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and verify a checkpoint; raise :class:`CheckpointError` naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"{path}: could not read it: {exc.strerror or exc}") from None
    except Exception as exc:  # truncated zip, garbage bytes, disallowed pickle globals
        raise CheckpointError(
            f"{path}: not a readable ntm_fast checkpoint (truncated or corrupt?): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt == FORMAT:
        if data.get("checksum") != content_checksum(data):
            raise CheckpointError(
                f"{path}: checksum mismatch: the content changed after it was written "
                "(disk or copy corruption, or an edit); use an intact copy"
            )
    elif fmt in LEGACY_FORMATS:
        warnings.warn(
            f"{path}: written before checkpoints had checksums ({fmt}); its content cannot "
            "be verified",
            RuntimeWarning,
            stacklevel=2,
        )
    else:
        raise CheckpointError(f"{path}: not an ntm_fast checkpoint (no '{FORMAT}' tag)")
    check_fields(data, path, _REQUIRED)
    return data


def check_fields(data: dict[str, Any], path: str | os.PathLike[str], names: Any) -> None:
    """Each of ``names`` is present in ``data`` with the type :data:`FIELDS` gives, else a
    :class:`CheckpointError` naming the file and the field (a hand-edited checkpoint)."""
    missing = [k for k in names if k not in data]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    for name in names:
        if name not in FIELDS:
            continue
        types, what = FIELDS[name]
        v = data[name]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if ok and name in ("step", "sequences", "elapsed", "nonfinite_steps"):
            ok = v >= 0
        elif ok and name == "torch_rng":
            ok = v.dtype == torch.uint8
        elif ok and name == "log_acc":
            ok = v.shape == (3,) and v.is_floating_point()
        elif ok and name == "grad_norm_mean" and v is not None:
            ok = v.shape == () and v.is_floating_point() and bool(v.isfinite())
        elif ok and name == "model":
            ok = all(isinstance(t, torch.Tensor) for t in v.values())
        elif ok and name == "arithmetic":
            ok = all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
        if not ok:
            got = f"{type(v).__name__} {_short(v)}"
            raise CheckpointError(f"{path}: field {name!r} should be {what}, got {got}")


def _short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"of shape {tuple(v.shape)} and dtype {v.dtype}"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_finite(data: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse a checkpoint whose model weights or optimiser state hold NaN or inf (a run that
    diverged before this guard existed, or an edit): training on or evaluating it would only
    produce NaN."""
    groups = [("model weight", data.get("model", {}).items())]
    state = data.get("optimizer", {})
    state = state.get("state", {}) if isinstance(state, dict) else {}
    if isinstance(state, dict):
        entries = [(f"{i}.{k}", t) for i, s in state.items() if isinstance(s, dict)
                   for k, t in s.items()]  # fmt: skip
        groups.append(("optimiser state", entries))
    for what, items in groups:
        for name, t in items:
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not t.isfinite().all():
                raise CheckpointError(
                    f"{path}: {what} {name!r} holds NaN or inf (the run diverged?); it cannot "
                    "be trained on or evaluated - use an earlier checkpoint"
                )


def load_for_resume(path: str | os.PathLike[str], task: str, controller: str) -> dict[str, Any]:
    """A checkpoint to continue training from: every field a run reads present and typed,
    weights and optimiser state finite, and trained on ``task`` with ``controller``."""
    state = load_checkpoint(path)
    check_fields(state, path, (*RESUME_FIELDS, *sorted(OPTIONAL_FIELDS.intersection(state))))
    try:
        config_from_dict(state["config"], str(path))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    check_finite(state, path)
    for name, want in (("task", task), ("controller", controller)):
        if state["config"].get(name) != want:
            raise CheckpointError(
                f"{path}: was trained with {name}={state['config'].get(name)!r}, not {want!r}"
            )
    return state


def load_model(
    path: str | os.PathLike[str], backend: str = "auto", memory_slots: int | None = None
) -> tuple[dict[str, Any], Any]:
    """The checkpoint and its model (built by :func:`ntm_fast.train.presets.build_model`, weights
    loaded, on the CPU); a configuration/weights mismatch, a mistyped field or non-finite
    weights are a :class:`CheckpointError`. ``memory_slots``: build the NTM with that many
    slots instead of its own (:mod:`ntm_fast.memory_size`; a
    :class:`~ntm_fast.train.config.UserError` when the model cannot grow). A model trained
    on fewer slots than it has (``--train-memory-slots``) is built with its own number of
    slots unless ``memory_slots`` says otherwise."""
    state = load_checkpoint(path)
    check_fields(state, path, ("config", "model_config", "task_config", "step", "sequences"))
    check_finite({"model": state["model"]}, path)
    config, weights = state["model_config"], state["model"]
    try:
        trained = config_from_dict(state["config"], str(path)).train_memory_slots
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    if trained:  # trained on fewer slots than the model has: weights of that size
        memory_slots = memory_slots or config.get("memory_slots")
        config = {**config, "memory_slots": trained}
    if memory_slots is not None and memory_slots != config.get("memory_slots"):
        if config.get("kind") != "ntm":
            raise UserError(f"--memory-slots: {path} holds an LSTM baseline, which has no memory")
        try:
            weights = grow_memory_state(weights, memory_slots)
        except ValueError as exc:
            raise UserError(f"--memory-slots {memory_slots} for {path}: {exc}") from None
        config = {**config, "memory_slots": memory_slots}
    try:
        model = build_model(config, backend)
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise CheckpointError(
            f"{path}: model weights do not match its configuration: {exc}"
        ) from None
    return state, model
