"""Data-parallel training under ``torchrun``: process group, ranks, seeds, per-rank state.

Everything here is a no-op (or the identity) in a single process, so a run without
``torchrun`` is exactly the single-device run. Under ``torchrun`` (``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` in the environment) :func:`session` initialises the default process group
and :class:`ntm_fast.train.Trainer` then

* wraps the model in :class:`torch.nn.parallel.DistributedDataParallel` (gradients averaged
  over ranks during backward),
* draws rank ``r``'s batches from its own task generator seeded with :func:`data_seed`,
* opens the run directory (and reads a checkpoint to resume) on rank 0 only and sends the
  result to every rank (:func:`from_main`), so only rank 0 needs the files,
* collects every rank's data-stream state into rank 0's checkpoint (:func:`collect`) and gives
  each rank its own back on resume (:func:`this_rank`),
* agrees on when to stop (Ctrl-C or SIGTERM on any rank, ``--minutes`` on any rank, NaN,
  a failed write on rank 0: :func:`any_rank`, :func:`max_over_ranks`),
* logs, draws the progress bar and figures, and writes files on rank 0 only.

See docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .checkpoint import CheckpointError

T = TypeVar("T")

#: checkpoint entries that differ between ranks; stored per rank under ``"ranks"``
RANK_KEYS = ("task", "torch_rng", "log_acc")

# Handles of the latest collectives started here (each holds its tensors), referenced from
# Python until the interpreter exits. Why: a gloo worker thread drops its reference to a
# finished op a little after the op completes. Were that the last one, the thread would free
# the tensors' Python objects, which needs the GIL: during the teardown's thread join that
# deadlocks (torch 2.13, gather_object), and during interpreter shutdown the thread is killed
# mid-free ("terminate called without an active exception", SIGABRT: 5 of 62 torchrun runs
# of 2 ranks on 2 cores, session 27). Kept past teardown because after DDP the process group
# and its threads outlive destroy_process_group (torch 2.13). The oldest are dropped 64
# collectives later, long after their workers let go (and mid-run a late worker could take
# the GIL anyway).
_recent_ops: deque[dist.Work] = deque(maxlen=64)


def _finish(work: dist.Work | None) -> None:
    """Wait for a collective started with ``async_op=True`` and keep its handle (above)."""
    assert work is not None
    work.wait()
    _recent_ops.append(work)


def launched() -> bool:
    """True when this process was started by ``torchrun`` (or set up like it)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 - or, outside a process group (e.g. after :func:`session` ended), a process
    whose ``RANK`` environment variable is unset or 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0") == "0"


def default_backend() -> str:
    """``nccl`` for CUDA tensors and ``gloo`` for CPU tensors where CUDA and NCCL are
    available (one group, ``"cpu:gloo,cuda:nccl"``); otherwise ``gloo``."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init(backend: str | None = None) -> None:
    """Initialise the default process group from torchrun's environment (``env://``)."""
    local = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available() and local < torch.cuda.device_count():
        torch.cuda.set_device(local)  # nccl (and object collectives on it) use this device
    dist.init_process_group(backend=backend or default_backend())


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(backend: str | None = None) -> Iterator[None]:
    """A process group for the body when launched by torchrun; nothing otherwise (or when one
    is already initialised, which the caller then owns)."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield
        return
    init(backend)
    try:
        yield
    finally:
        teardown()


def local_device(device: str) -> torch.device:
    """The device this rank trains on: ``device`` itself, except that a CUDA device under
    torchrun becomes ``cuda:LOCAL_RANK`` (one GPU per process)."""
    d = torch.device(device)
    if active() and d.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return d


def data_seed(seed: int, rank_: int | None = None) -> int:
    """The seed of rank ``rank_``'s data stream (default: this process's rank).

    Rank 0 uses the run seed itself, so a single-process run and rank 0 of a data-parallel
    run draw the same sequences. Rank ``r >= 1`` uses the first 8 bytes (little-endian) of
    ``sha256(f"ntm_fast data seed {seed} rank {r}")`` shifted right by one bit (a 63-bit
    non-negative int): reproducible, different for every (seed, rank), and not ``seed + r``,
    so runs with neighbouring seeds share no stream.
    """
    r = rank() if rank_ is None else rank_
    if r == 0:
        return seed
    digest = hashlib.sha256(f"ntm_fast data seed {seed} rank {r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when active (parameters are broadcast from rank 0
    now and gradients all-reduced, averaged, during every backward); ``model`` otherwise."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _flag_device() -> torch.device:
    backend = str(dist.get_backend())
    if "gloo" in backend or "mpi" in backend or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def any_rank(flag: bool) -> bool:
    """``flag`` OR-ed over all ranks (one small all-reduce; ``flag`` itself in one process).
    Every rank must call it at the same point: it is how ranks agree to stop together."""
    if not active():
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_flag_device())
    _finish(dist.all_reduce(t, op=dist.ReduceOp.MAX, async_op=True))
    return bool(t.item())


def max_over_ranks(*values: int) -> list[int]:
    """Each of ``values`` maximised over all ranks (one small all-reduce; ``values`` itself in
    one process). Every rank must call it at the same point (how ranks agree on a stop signal
    and its kind, or on a checkpoint request)."""
    if not active():
        return [int(v) for v in values]
    t = torch.tensor(values, dtype=torch.int32, device=_flag_device())
    _finish(dist.all_reduce(t, op=dist.ReduceOp.MAX, async_op=True))
    return [int(v) for v in t.tolist()]


def average_(t: Tensor) -> Tensor:
    """All-reduce ``t`` in place to its mean over ranks (identical on every rank)."""
    if active():
        _finish(dist.all_reduce(t, async_op=True))
        t.div_(dist.get_world_size())
    return t


def _broadcast_bytes(data: bytes | None) -> bytes:
    """Rank 0's ``data`` on every rank (the others pass None)."""
    dev = _flag_device()
    size = torch.tensor([len(data) if data is not None else 0], dtype=torch.int64, device=dev)
    _finish(dist.broadcast(size, src=0, async_op=True))
    buf = torch.empty(int(size.item()), dtype=torch.uint8, device=dev)
    if data is not None:
        buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    _finish(dist.broadcast(buf, src=0, async_op=True))
    return buf.cpu().numpy().tobytes()


def _gather_bytes(data: bytes) -> list[bytes] | None:
    """Every rank's ``data`` on rank 0 (in rank order); None on the other ranks."""
    dev, k = _flag_device(), dist.get_world_size()
    size = torch.tensor([len(data)], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(size) for _ in range(k)]
    _finish(dist.all_gather(sizes, size, async_op=True))
    n = [int(x.item()) for x in sizes]
    buf = torch.zeros(max(n), dtype=torch.uint8, device=dev)
    buf[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    out = [torch.empty_like(buf) for _ in range(k)] if dist.get_rank() == 0 else None
    _finish(dist.gather(buf, out, dst=0, async_op=True))
    if out is None:
        return None
    return [o[:m].cpu().numpy().tobytes() for o, m in zip(out, n, strict=True)]


def from_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 and return its result on every rank (an exception it raises is
    raised on every rank). In one process: ``fn()``."""
    if not active():
        return fn()
    data = None
    if dist.get_rank() == 0:
        try:
            data = pickle.dumps((True, fn()))
        except Exception as exc:
            try:
                data = pickle.dumps((False, exc))
            except Exception:
                data = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
    ok, value = pickle.loads(_broadcast_bytes(data))  # from rank 0 of this run: trusted
    if not ok:
        raise value
    return value


def collect(state: dict[str, Any]) -> dict[str, Any] | None:
    """A checkpoint payload for rank 0 with every rank's :data:`RANK_KEYS` entries gathered
    into ``state["ranks"]`` (a list indexed by rank) and ``state["world_size"]``; ``None`` on
    the other ranks. In one process: ``state`` unchanged (no extra keys)."""
    if not active():
        return state
    blobs = _gather_bytes(pickle.dumps({k: state[k] for k in RANK_KEYS}))
    if blobs is None:
        return None
    gathered = [pickle.loads(b) for b in blobs]  # from this run's ranks: trusted
    return {**state, "world_size": len(gathered), "ranks": gathered}


def this_rank(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """``state`` with this rank's :data:`RANK_KEYS` entries; a checkpoint written by a
    different number of processes is a :class:`CheckpointError` (its data streams cannot be
    continued exactly)."""
    stored = state.get("world_size", 1)
    if stored != world_size():
        raise CheckpointError(
            f"{path}: was written by a run of {stored} process(es), this run has "
            f"{world_size()}; resume it with the same total number of processes"
        )
    if stored == 1:
        return state
    return {**state, **state["ranks"][rank()]}
