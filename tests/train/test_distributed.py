"""Data-parallel training (torchrun / DDP, gloo on 127.0.0.1): equal to one process on the
concatenated batch, exact resume, one data stream per rank, files written by rank 0 only.

One ``torch.multiprocessing`` spawn of 2 ranks runs every Trainer job (imports are the cost),
one torchrun subprocess checks the real launcher path through the CLI.
"""

import faulthandler
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ntm_fast.train import TrainConfig, Trainer, distributed
from ntm_fast.train.checkpoint import load_checkpoint
from ntm_fast.train.tasks import Batch, make_task

TINY = dict(memory_slots=8, memory_width=6, controller_size=16)
B = 3  # per rank
WORLD = 2


def _config(out, **kw):
    # constant lr: the resume test extends a 3-step run to 6 steps, which would stretch a decay
    base = dict(task="copy", steps=6, batch_size=B, lr=3e-3, seed=5, out=str(out),
                optimizer="rmsprop", model_overrides=dict(TINY),
                task_overrides={"max_length": 3}, checkpoint_every=1000, log_every=2,
                plots=False, progress=False, backend="native",
                lr_schedule="constant")  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank: int, port: int) -> dict[str, str]:
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "GLOO_SOCKET_IFNAME": "lo"}  # fmt: skip


def _worker(rank: int, port: int, root: str) -> None:
    """Rank ``rank`` of every 2-process job; records which rank wrote files."""
    faulthandler.dump_traceback_later(100, exit=True)  # a hang fails with its stack
    os.environ.update(_env(rank, port))
    import ntm_fast.train.trainer as train_mod

    calls = open(os.path.join(root, f"calls-{rank}.txt"), "w")
    real_save, real_logger = train_mod.save_checkpoint, train_mod._Logger

    def save(path, payload):
        calls.write(f"save {path}\n")
        return real_save(path, payload)

    def logger(*a, **k):
        calls.write("logger\n")
        return real_logger(*a, **k)

    train_mod.save_checkpoint, train_mod._Logger = save, logger
    with distributed.session("gloo"):
        assert distributed.active() and distributed.rank() == rank
        Trainer(_config(f"{root}/full")).run()
        Trainer(_config(f"{root}/split", steps=3)).run()
        Trainer(_config(f"{root}/split"), resume=True, resume_overrides={"steps": 6}).run()
        # DDP's allreduce hooks fire on the grads NTMSequence returns: a comm hook sees them
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        t = Trainer(_config(f"{root}/hook"))
        seen = []

        def hook(state, bucket):
            seen.append(bucket.buffer().numel())
            return allreduce_hook(None, bucket)

        t.net.register_comm_hook(None, hook)
        torch.manual_seed(100 + rank)  # a batch of its own on each rank
        t.train_step()
        grads = torch.cat([p.grad.flatten() for p in t.model.parameters()])
        others = [torch.empty_like(grads) for _ in range(WORLD)]
        distributed._finish(dist.all_gather(others, grads, async_op=True))  # kept: see there
        assert sum(seen) == sum(p.numel() for p in t.model.parameters())
        assert torch.equal(others[0], others[1])  # averaged: identical on both ranks
        # every collective's handle stays referenced (the newest 64): no gloo thread frees a
        # tensor's Python object, which would need the GIL (see distributed._recent_ops)
        kept = distributed._recent_ops
        assert len(kept) >= 30 and all(w.is_completed() for w in kept), len(kept)
        del t, others, grads  # free DDP (its Python comm hook) before the process group
    calls.close()


def _spawn(root) -> None:
    ctx = mp.start_processes(_worker, args=(_free_port(), str(root)), nprocs=WORLD,
                             join=False, start_method="spawn")  # fmt: skip
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("2-process training did not finish in 120 s")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    # No retry: a rank killed at exit by SIGABRT ("terminate called without an active
    # exception", 1 in ~10 spawns up to session 26) is a bug (distributed._recent_ops)
    root = tmp_path_factory.mktemp("ddp")
    _spawn(root)
    return root


def _pad_cat(a: Batch, b: Batch) -> Batch:
    """One batch of a's and b's sequences, zero-padded to the longer (padding only follows a
    sequence's last target and has mask 0: the same cost and gradient per sequence)."""
    T = max(a.inputs.shape[0], b.inputs.shape[0])

    def pad(x):
        return torch.cat([x, x.new_zeros(T - x.shape[0], *x.shape[1:])])

    return Batch(*(torch.cat([pad(x), pad(y)], dim=1) for x, y in zip(a[:3], b[:3], strict=True)),
                 torch.cat([a.lengths, b.lengths]))  # fmt: skip


def test_two_processes_equal_one_process_on_the_concatenated_batch(runs, tmp_path):
    """DDP averages the ranks' gradients of their per-rank mean costs = the gradient of the
    global batch's mean cost (equal per-rank batches); clipping and RMSProp then see the same
    gradient as one process on the concatenated batch. Not bit-identical: the global batch's
    matmuls and the all-reduce sum the same terms in a different order (float rounding), so
    compared within a tolerance. RMSProp (eps 1e-4 inside the root) does not amplify those
    rounding differences the way Adam's tiny-gradient divisions can."""
    single = Trainer(_config(tmp_path, batch_size=WORLD * B))
    config = single.task.config()  # the preset's, blanked for its first sequences included
    streams = [make_task("copy", distributed.data_seed(5, r), **config) for r in range(2)]
    for stream in streams:  # each counts the whole run's sequences, like a rank's
        stream.streams = WORLD
    single.task.sample = lambda n: _pad_cat(*(s.sample(n // WORLD) for s in streams))
    single.run()
    ddp = load_checkpoint(runs / "full")
    assert ddp["step"] == 6 and ddp["sequences"] == 6 * WORLD * B
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    initial = Trainer(_config(tmp_path / "init")).model.state_dict()
    assert not torch.allclose(ddp["model"]["output.weight"], initial["output.weight"])  # trained


def test_two_process_resume_is_bit_identical(runs):
    """Interrupted (3 steps) + resumed (3 more) == 6 uninterrupted steps, exactly: each rank
    restores its own data stream and logging sums from the checkpoint, and the same ops run
    in the same order (a 2-rank all-reduce adds the same two numbers, a + b == b + a)."""
    full, split = load_checkpoint(runs / "full"), load_checkpoint(runs / "split")
    assert full["step"] == split["step"] == 6
    for k in full["model"]:
        assert torch.equal(full["model"][k], split["model"][k]), k
    for i, st in full["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, split["optimizer"]["state"][i][k]), (i, k)
    for r in range(WORLD):
        for k in ("torch_rng", "log_acc"):
            assert torch.equal(full["ranks"][r][k], split["ranks"][r][k]), (r, k)
        assert torch.equal(full["ranks"][r]["task"]["generator"],
                           split["ranks"][r]["task"]["generator"])  # fmt: skip
    logs = [(runs / d / "log.csv").read_text().splitlines() for d in ("full", "split")]
    assert logs[0][-1].split(",")[:4] == logs[1][-1].split(",")[:4]  # not the timings


def test_ranks_draw_different_reproducible_streams(runs):
    assert distributed.data_seed(5, 0) == 5  # rank 0 = the single-process stream
    seeds = {distributed.data_seed(s, r) for s in range(3) for r in range(4)}
    assert len(seeds) == 12 and distributed.data_seed(5, 1) == distributed.data_seed(5, 1)
    ckpt = load_checkpoint(runs / "full")
    assert ckpt["world_size"] == WORLD
    states = [ckpt["ranks"][r]["task"]["generator"] for r in range(WORLD)]
    assert not torch.equal(states[0], states[1])
    for r in range(WORLD):  # each rank's stored stream = its seed's stream after 6 batches
        config = {k: v for k, v in ckpt["task_config"].items() if k != "name"}
        task = make_task("copy", distributed.data_seed(5, r), **config)
        task.streams = WORLD
        for _ in range(6):
            task.sample(B)
        assert torch.equal(task.generator.get_state(), states[r]), r
        # the trainer made each rank count the whole run's sequences (Task.streams), so that
        # copy's zero_vector_until switches on every rank at the same step
        assert int(ckpt["ranks"][r]["task"]["sequences_drawn"]) == 6 * WORLD * B
    assert torch.equal(ckpt["task"]["generator"], states[0])


def test_only_rank_0_writes(runs):
    calls = [(runs / f"calls-{r}.txt").read_text().splitlines() for r in range(WORLD)]
    assert calls[1] == []
    assert calls[0].count("logger") == 3 and len(calls[0]) == 6  # 3 runs, a save each
    log = (runs / "full" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and [r.split(",")[:2] for r in log[1:]] == [
        ["2", "12"], ["4", "24"], ["6", "36"]]  # fmt: skip
    files = sorted(p.name for p in (runs / "full").iterdir())
    assert files == [".lock", "checkpoint.pt", "log.csv"]  # .lock: the run directory's lock


def test_torchrun_cli_and_checkpoint_world_size_guard(tmp_path):
    """The real launcher: torchrun -m ntm_fast.train; one JSON summary (rank 0); the
    checkpoint cannot be resumed by a different number of processes."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "ntm_fast.train", "copy", "--steps", "2", "--out", str(run),
           "--memory-slots", "8", "--memory-width", "4", "--controller-size", "8",
           "--task-arg", "max_length=3", "--batch-size", "2", "--log-every", "1",
           "--backend", "native", "--no-progress", "--no-plots",
           "--dist-backend", "gloo"]  # fmt: skip
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1 and lines[0]["step"] == 2 and lines[0]["sequences"] == 8
    assert proc.stderr.count("batch 2 per rank x 2 ranks") == 1
    from ntm_fast.train.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="2 process"):
        Trainer(TrainConfig(task="copy", out=str(run)), resume=True)


def test_single_process_checkpoint_has_no_rank_entries(tmp_path):
    Trainer(_config(tmp_path, steps=1, backend="reference")).run()
    ckpt = load_checkpoint(tmp_path)
    assert "ranks" not in ckpt and "world_size" not in ckpt and not distributed.active()


_COMPILE_SCRIPT = r"""
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from ntm_fast import FastNTM
dist.init_process_group("gloo")
torch.manual_seed(0)
model = FastNTM(4, 3, memory_slots=8, memory_width=6, controller_size=16, backend="native")
eager = FastNTM.from_reference(model, backend="native")
ddp = torch.compile(DDP(model), backend="aot_eager")
x = torch.rand(5, 2, 4)
ddp(x)[0].square().sum().backward()
eager(x)[0].square().sum().backward()
for (name, p), q in zip(model.named_parameters(), eager.parameters()):
    torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=name)
dist.destroy_process_group()
print("ok")
"""


def test_compiled_ddp_fast_ntm_matches_eager():
    """torch.compile(DDP(FastNTM)) traces the custom ops (the per-step path under compile)
    and DDP's gradient hooks still deliver the eager gradients (one gloo rank)."""
    env = {**os.environ, **_env(0, _free_port()), "WORLD_SIZE": "1"}
    done = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
