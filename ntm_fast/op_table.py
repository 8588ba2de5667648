"""The memory ops, declared once: each op's name, tensor arguments (and their shapes, in
dimension letters) and output shape. The backends derive their wrappers, fake (meta) kernels and
autograd registrations from this table, the tests their op parametrisation, and the benchmarks
their workloads; :func:`make_inputs` is the one factory of valid random inputs they share.

Adding an op: its reference function in :mod:`ntm_fast.reference`, its ``check_<op>`` in
:mod:`ntm_fast.validation`, its kernels (``kernels/<op>.py``, ``csrc/``: the C++ schema in
``csrc/registration.cpp`` must name the same arguments; tests/ops/test_op_table.py checks it)
and one entry in :data:`OPS`.

Letters: B batch, H heads, N memory slots, W slot width, S = 2k+1 shifts. Torch-only: this
module never imports the training application (:mod:`ntm_fast.train`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from . import reference, validation
from .autograd_checks import refuse_double_backward

Shape = tuple[str, ...]

#: Every tensor argument's shape: an argument name means the same thing in every op.
ARG_SHAPES: dict[str, Shape] = {
    "memory": ("B", "N", "W"),
    "key": ("B", "H", "W"),
    "beta": ("B", "H"),
    "gate": ("B", "H"),
    "shift": ("B", "H", "S"),
    "gamma": ("B", "H"),
    "w": ("B", "H", "N"),
    "w_prev": ("B", "H", "N"),
    "w_content": ("B", "H", "N"),
    "erase": ("B", "H", "W"),
    "add": ("B", "H", "W"),
}


@dataclass(frozen=True)
class OpSpec:
    """One memory op: ``reference.<name>(*args) -> out``, checked by ``validation.check_<name>``;
    the fast backends register ``<name>_fwd(*args) -> out`` and
    ``<name>_bwd(grad, *args) -> (one gradient per argument)``."""

    name: str
    args: tuple[str, ...]
    out: Shape

    @property
    def reference(self) -> Callable[..., Tensor]:
        return getattr(reference, self.name)

    @property
    def check(self) -> Callable[..., object]:
        return getattr(validation, f"check_{self.name}")

    def out_shape(self, *tensors: Tensor) -> tuple:
        """The output shape for these (valid) arguments; symbolic sizes pass through."""
        sizes: dict[str, object] = {}
        for name, t in zip(self.args, tensors, strict=True):
            for letter, size in zip(ARG_SHAPES[name], t.shape, strict=True):
                sizes.setdefault(letter, size)
        return tuple(sizes[letter] for letter in self.out)

    def fake_fwd(self, *tensors: Tensor) -> Tensor:
        """The forward's fake (meta) kernel: an empty output of the right shape."""
        return tensors[0].new_empty(self.out_shape(*tensors))

    @staticmethod
    def fake_bwd(grad: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        """The backward's fake kernel: one gradient per argument, shaped like it."""
        return tuple(t.new_empty(t.shape) for t in tensors)


def _spec(name: str, args: str, out: str) -> OpSpec:
    return OpSpec(name, tuple(args.split()), tuple(out))


#: The ops, in the order tests and docs list them.
OPS: dict[str, OpSpec] = {
    s.name: s
    for s in (
        _spec("content_address", "memory key beta", "BHN"),
        _spec("interpolate", "w_content w_prev gate", "BHN"),
        _spec("shift_convolve", "w shift", "BHN"),
        _spec("sharpen", "w gamma", "BHN"),
        _spec("address", "memory key beta gate shift gamma w_prev", "BHN"),
        _spec("read", "memory w", "BHW"),
        _spec("write", "memory w erase add", "BNW"),
    )
}
OP_NAMES: tuple[str, ...] = tuple(OPS)
#: Each op's tensor arguments, in order.
OP_ARGS: dict[str, tuple[str, ...]] = {name: s.args for name, s in OPS.items()}


def backend_functions(
    module: str, prepare: Callable[[Tensor], None], forward: Callable[[str], Callable[..., Tensor]]
) -> dict[str, Callable[..., Tensor]]:
    """A fast backend's op functions, by name: each validates its arguments (the reference's
    messages), runs ``prepare(first argument)`` (e.g. an availability check), then the forward
    op ``forward(name)``. Named ``<module>.<op>``, with the reference's signature and type
    hints; arguments are positional, as :mod:`ntm_fast.ops` passes them."""

    def make(check: Callable[..., object], fwd: Callable[..., Tensor]) -> Callable[..., Tensor]:
        def op(*args: Tensor) -> Tensor:
            check(*args)
            prepare(args[0])
            return fwd(*args)

        return op

    out = {}
    for spec in OPS.values():
        op, ref = make(spec.check, forward(spec.name)), spec.reference
        op.__name__ = op.__qualname__ = spec.name
        op.__module__, op.__doc__ = module, f"See :func:`ntm_fast.reference.{spec.name}`."
        op.__signature__ = inspect.signature(ref)  # type: ignore[attr-defined]
        op.__annotations__ = dict(ref.__annotations__)
        out[spec.name] = op
    return out


def _save_inputs(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def register_fakes_and_autograd(namespace: str, label: str) -> None:
    """For every op: the fake kernels of ``<namespace>::<op>_fwd`` and ``_bwd`` (so
    ``torch.compile`` traces them without a graph break) and the forward's autograd formula,
    whose backward is the ``_bwd`` op (not itself differentiable: ``label`` names it in the
    double-backward error)."""
    ops = getattr(torch.ops, namespace)
    for spec in OPS.values():
        fwd = f"{namespace}::{spec.name}_fwd"
        torch.library.register_fake(fwd, spec.fake_fwd)
        torch.library.register_fake(f"{namespace}::{spec.name}_bwd", spec.fake_bwd)
        bwd_op = getattr(ops, f"{spec.name}_bwd").default

        def backward(ctx, grad, _bwd_op=bwd_op, _what=f"{label} {spec.name}"):
            refuse_double_backward(_what)
            return tuple(_bwd_op(grad, *ctx.saved_tensors))

        torch.library.register_autograd(fwd, backward, setup_context=_save_inputs)


# ---- the input factory ------------------------------------------------------------------------

#: Default ranges of the bounded arguments (each drawn uniformly in [lo, hi]).
RANGES: dict[str, tuple[float, float]] = {
    "beta": (0.0, 20.0),  # β >= 0
    "gate": (0.0, 1.0),
    "gamma": (1.0, 10.0),  # γ >= 1
    "erase": (0.0, 1.0),
}


def draw(
    names: tuple[str, ...] | list[str],
    B: int,
    H: int,
    N: int,
    W: int,
    S: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    **ranges: tuple[float, float],
) -> dict[str, Tensor]:
    """Valid random values for the arguments ``names`` (any of :data:`ARG_SHAPES`), drawn in
    float64 on the CPU in that order from ``generator``, then cast to ``dtype`` on ``device``.
    Memory, keys and add vectors are standard normal; weightings and shifts are distributions
    (softmax of 2·randn: rows sum to 1); β, the gate, γ and erase are uniform in their range of
    :data:`RANGES`, overridden by keyword (e.g. ``beta=(0.0, 5.0)``)."""
    unknown = set(ranges) - set(RANGES)
    if unknown:
        raise TypeError(f"draw: unknown ranges {sorted(unknown)}; expected some of {list(RANGES)}")
    sizes = dict(B=B, H=H, N=N, W=W, S=S)
    bounds = {**RANGES, **ranges}
    out = {}
    for name in names:
        shape = tuple(sizes[letter] for letter in ARG_SHAPES[name])
        if name in bounds:
            lo, hi = bounds[name]
            t = lo + (hi - lo) * torch.rand(shape, dtype=torch.float64, generator=generator)
        else:
            t = torch.randn(shape, dtype=torch.float64, generator=generator)
            if name == "shift" or name.startswith("w"):
                t = torch.softmax(2 * t, -1)
        out[name] = t.to(device=device, dtype=dtype)
    return out


def make_inputs(
    op: str,
    B: int,
    H: int,
    N: int,
    W: int,
    S: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    **ranges: tuple[float, float],
) -> tuple[Tensor, ...]:
    """Valid random inputs for ``op``, in its argument order (see :func:`draw`)."""
    args = OPS[op].args
    values = draw(args, B, H, N, W, S, dtype=dtype, device=device, generator=generator, **ranges)
    return tuple(values[name] for name in args)
