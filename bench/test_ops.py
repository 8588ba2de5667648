"""Per-op speed: forward and forward+backward, every backend, one group per workload.

Each benchmark's ``extra_info`` carries the op, pass, backend and shape, the bytes an ideal
forward kernel moves, and the device's measured copy bandwidth, so ``bench.report`` can print
achieved bandwidth against the roofline.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from ntm_fast.op_table import OP_NAMES as OPS

from .workloads import BACKENDS, copy_bandwidth, op_bytes, op_function, op_inputs, skip_reason, sync

# (B, H, N, W, S): the paper's copy configuration (one read + one write head addressed together)
# at several batch sizes, then sweeps over N, W and heads.
COPY = [(B, 2, 128, 20, 3) for B in (1, 16, 256, 1024)]
SWEEP_N = [(16, 2, N, 20, 3) for N in (128, 1024, 8192, 65536)]
SWEEP_W = [(16, 2, 128, W, 3) for W in (20, 64, 256, 512)]
SWEEP_H = [(16, H, 128, 20, 3) for H in (1, 2, 4, 8)]
ROOFLINE = [(2048, 2, 1024, 64, 3)]  # B·H >= 4096: the bandwidth target of the benchmark issue
CPU_LIMIT = 1 << 22  # skip CPU cases whose memory exceeds this many elements (minutes per round)


def _cases():
    seen = set()
    for cfg in COPY + SWEEP_N + SWEEP_W + SWEEP_H + ROOFLINE:
        if cfg not in seen:
            seen.add(cfg)
            yield cfg


@pytest.mark.parametrize("cfg", list(_cases()), ids=lambda c: "B{}-H{}-N{}-W{}-S{}".format(*c))
@pytest.mark.parametrize("direction", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_op(benchmark, op, backend, direction, cfg, device, copy_bandwidth_cache):
    B, H, N, W, S = cfg
    reason = skip_reason(backend, device)
    if reason:
        pytest.skip(reason)
    if device.type == "cpu" and B * N * W > CPU_LIMIT:
        pytest.skip(f"B*N*W = {B * N * W} is a GPU-sized case (CPU limit {CPU_LIMIT})")
    if backend == "reference-compiled" and cfg not in COPY[:2] and device.type == "cpu":
        pytest.skip("compiled reference on the CPU: only the copy configuration (compile time)")
    fn = op_function(op, backend, device)
    grad = direction == "fwd+bwd"
    n_sets = 4 if op_bytes(op, *cfg) < (32 << 20) else 1  # rotate inputs while they fit in cache
    sets = [op_inputs(op, *cfg, device=device, seed=i, grad=grad) for i in range(n_sets)]

    if grad:
        upstream = torch.randn_like(fn(*sets[0]))

        def run(args):
            fn(*args).backward(upstream)
            sync(device)
    else:

        def run(args):
            with torch.no_grad():
                fn(*args)
            sync(device)

    for args in sets[:1] if benchmark.disabled else sets * 2:  # warm-up: compile, autotune
        run(args)
    if device.type not in copy_bandwidth_cache:
        copy_bandwidth_cache[device.type] = copy_bandwidth(device)
    cycle = itertools.cycle(sets)
    benchmark.group = f"{op} {direction} {device.type} B{B} H{H} N{N} W{W} S{S}"
    benchmark.extra_info.update(
        op=op, direction=direction, backend=backend, device=device.type,
        B=B, H=H, N=N, W=W, S=S, dtype="float32",
        bytes=op_bytes(op, *cfg), copy_bandwidth=copy_bandwidth_cache[device.type],
    )  # fmt: skip
    benchmark(lambda: run(next(cycle)))
