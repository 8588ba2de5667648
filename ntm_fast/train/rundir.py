"""The run directory: one training process at a time, checked writable before training, stale
temporary files removed, and JSON written atomically and strictly (never ``NaN``).

The lock is ``RUN_DIR/.lock``, held with an OS advisory lock (``flock``, through the
``filelock`` package) for as long as a :class:`ntm_fast.train.Trainer` uses the directory.
The kernel drops the lock when its process exits in any way (``kill -9`` included), so a
lock file left behind by a killed run never blocks ``--resume``: only a live process holds
it. (On a file system without ``flock``, e.g. some network mounts, ``filelock`` falls back
to a lock file whose mere existence locks; remove ``.lock`` by hand after a crash there.)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .checkpoint import atomic_write
from .config import UserError

LOCK_NAME = ".lock"
#: a staged run's first stage runs in ``RUN/stage1/``, its finishing stage in ``RUN/`` (stages.py)
STAGE1 = "stage1"
#: temporary files of an interrupted save (``checkpoint.save_checkpoint``, :func:`write_text`)
STALE_PATTERNS = (".checkpoint.pt.*.tmp", ".log.csv.*.tmp")


def describe_os_error(exc: OSError) -> str:
    """``exc`` without its file name (the caller names the file): e.g. "No space left on
    device (errno 28)"."""
    if exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})" if exc.errno else exc.strerror
    return str(exc) or type(exc).__name__


def file_error(path: str | os.PathLike[str], action: str, exc: OSError) -> UserError:
    """A :class:`UserError` "PATH: could not ACTION: REASON"."""
    return UserError(f"{path}: could not {action}: {describe_os_error(exc)}")


class RunDir:
    """An open, locked run directory; :meth:`release` unlocks it (idempotent)."""

    def __init__(self, path: Path, lock: FileLock, created: bool) -> None:
        self.path, self._lock, self._created = path, lock, created

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """Create ``path`` if needed, check it is a writable directory, take its lock and
        remove stale temporary files. Raises :class:`UserError` naming the directory when it
        is a file, cannot be written (read-only or full file system, permissions) or is in use
        by another live training process."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path}: is a file, not a run directory")
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise file_error(path, "write to the run directory", exc) from None
        lock = FileLock(str(path / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise UserError(
                f"{path}: in use by another training process (it holds {path / LOCK_NAME}); "
                "wait for it to finish, stop it, or choose another --out"
            ) from None
        except OSError as exc:
            raise file_error(path / LOCK_NAME, "lock the run directory", exc) from None
        run = cls(path, lock, created)
        run.remove_stale_files()
        return run

    def remove_stale_files(self) -> list[Path]:
        """Delete temporary files of saves that were killed midway (only safe while holding
        the lock: no save of this run can be in progress)."""
        removed = []
        for pattern in STALE_PATTERNS:
            for p in self.path.glob(pattern):
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
        return removed

    def release(self, *, discard_if_unused: bool = False) -> None:
        """Unlock. With ``discard_if_unused``, a directory this object created and nothing was
        written to is removed again (a run that failed before it started)."""
        if self._lock is None:
            return
        self._lock.release()
        self._lock = None
        if discard_if_unused and self._created:
            try:
                (self.path / LOCK_NAME).unlink()
                self.path.rmdir()  # only if empty
            except OSError:
                pass


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON of :func:`json_safe` ``(obj)``."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file, then ``os.replace``); an
    ``OSError`` leaves any previous file untouched and no temporary file behind."""
    return atomic_write(path, lambda f: f.write(text))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as strict, indented JSON (non-finite numbers become null), atomically."""
    return write_text(path, dumps(obj, indent=2))
