"""Determinism on the CPU: the same inputs (the same seed) give bit-identical results.

* Op level: every native op, forward and backward, twice, and with 1 vs 2 intra-op threads
  (the CPU kernels split work with ``at::parallel_for``; gradients summed over heads or rows
  are accumulated by one task in a fixed order, so the split must not change a bit).
* Model level: two short training runs of FastNTM (native) with the same seed end with
  identical parameters; the same for ReferenceNTM.
* Source level: no floating-point atomics in the CUDA kernels or the Triton kernels (the
  only way their backwards could become order-dependent), see docs/robustness.md.
"""

from __future__ import annotations

import pathlib
import re

import pytest
import torch
from tolerances import OP_ARGS

from ntm_fast import FastNTM, ReferenceNTM, backends
from ntm_fast import native_backend as nb
from ntm_fast.op_table import make_inputs

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Large enough that parallel_for splits the work (grain: 2^15 inner iterations per task).
B, H, N, W, S = 8, 4, 256, 32, 3

needs_native = pytest.mark.skipif(
    backends.unavailable_reason("native", torch.device("cpu")) is not None,
    reason=str(backends.unavailable_reason("native", torch.device("cpu"))),
)


def inputs(op: str, dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    return [t.requires_grad_() for t in make_inputs(op, B, H, N, W, S, dtype, generator=g)]


def run(op: str, dtype: torch.dtype) -> list[torch.Tensor]:
    args = inputs(op, dtype)
    out = getattr(nb, op)(*args)
    up = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=dtype)
    return [out.detach(), *torch.autograd.grad(out, args, up)]


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op", list(OP_ARGS))
def test_native_op_forward_backward_bit_identical(op, dtype):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first, second = run(op, dtype), run(op, dtype)
        torch.set_num_threads(1)
        single = run(op, dtype)
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(first, second, single, strict=True):
        assert torch.isfinite(a).all()
        assert torch.equal(a, b), f"{op}: two runs differ"
        assert torch.equal(a, c), f"{op}: 1 thread vs 2 threads differ"


def train(cls, seed: int, steps: int = 6, **kw) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = cls(5, 4, memory_slots=16, memory_width=6, controller_size=16, **kw)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = (torch.rand(9, 4, 5, generator=g) > 0.5).float()
        y = (torch.rand(9, 4, 4, generator=g) > 0.5).float()
        logits, _ = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@needs_native
def test_fast_ntm_native_training_is_bit_identical():
    first = train(FastNTM, seed=3, backend="native")
    assert_identical(first, train(FastNTM, seed=3, backend="native"))
    # and the runs did something: another seed ends elsewhere
    assert not torch.equal(
        first["memory_bias"], train(FastNTM, seed=4, backend="native")["memory_bias"]
    )


@needs_native
def test_fast_ntm_native_per_step_path_training_is_bit_identical():
    kw = dict(backend="native", fused_sequence=False)
    assert_identical(train(FastNTM, seed=5, **kw), train(FastNTM, seed=5, **kw))


@needs_native
def test_native_saved_buffers_are_reused_only_when_released():
    """sequence_fwd reuses its previous call's saved-history buffers once autograd has
    released them: graphs alive at the same time, or with a retained graph, must keep their
    own, and every graph gives the gradients it gives alone."""
    torch.manual_seed(0)
    model = FastNTM(5, 4, memory_slots=16, memory_width=6, controller_size=16, backend="native")
    params = list(model.parameters())
    g = torch.Generator().manual_seed(1)
    xs = [(torch.rand(9, 4, 5, generator=g) > 0.5).float() for _ in range(3)]

    def grads(x, **kw):
        return torch.autograd.grad(model(x)[0].square().sum(), params, **kw)

    alone = [grads(x) for x in xs]  # one after the other: each reuses the last one's buffers
    losses = [model(x)[0].square().sum() for x in xs]  # all alive at once
    together = [torch.autograd.grad(loss, params) for loss in reversed(losses)][::-1]
    loss = model(xs[0])[0].square().sum()
    first = torch.autograd.grad(loss, params, retain_graph=True)
    grads(xs[1])  # may not take the retained graph's buffers
    retained = torch.autograd.grad(loss, params)
    pairs = [*zip(alone, together, strict=True), (alone[0], first), (alone[0], retained)]
    for want, got in pairs:
        for a, b in zip(want, got, strict=True):
            assert torch.equal(a, b)


def test_reference_ntm_training_is_bit_identical():
    assert_identical(train(ReferenceNTM, seed=3), train(ReferenceNTM, seed=3))


def _lines_matching(folder: str, suffixes: tuple[str, ...], must_have: str, pattern: str) -> list:
    """``path:line: text`` for every line of the sources under ``folder`` matching
    ``pattern`` (``must_have`` must be among the files, so a moved tree cannot pass vacuously)."""
    files = [p for p in (ROOT / folder).rglob("*") if p.suffix in suffixes]
    assert any(p.name.endswith(must_have) for p in files), f"no {must_have} under {folder}/"
    return [
        f"{p.relative_to(ROOT)}:{i + 1}: {line.strip()}"
        for p in files
        for i, line in enumerate(p.read_text().splitlines())
        if re.search(pattern, line)
    ]


def test_no_float_atomics_in_cuda_kernels():
    hits = _lines_matching(
        "csrc", (".cu", ".cuh", ".h", ".cpp"), ".cu",
        r"\batomic(Add|Sub|Exch|CAS)\b|\bunsafeAtomicAdd\b|\bgpuAtomicAdd\b",
    )  # fmt: skip
    assert not hits, (
        "atomics make the CUDA backward order-dependent; see docs/robustness.md:\n"
        + "\n".join(hits)
    )


def test_no_atomics_in_triton_kernels():
    hits = _lines_matching("kernels", (".py",), "address.py", r"\btl\.atomic_\w+\s*\(")
    assert not hits, (
        "tl.atomic_* on floats is order-dependent: honour "
        "torch.are_deterministic_algorithms_enabled() or remove it (docs/robustness.md):\n"
        + "\n".join(hits)
    )
