"""The op table (ntm_fast.op_table) is the one declaration of the op set: every backend, the
public API, the C++ schemas and the input factory agree with it."""

from __future__ import annotations

import inspect

import pytest
import torch

from ntm_fast import backends, ops, reference, validation
from ntm_fast.op_table import ARG_SHAPES, OP_ARGS, OP_NAMES, OPS, RANGES, draw, make_inputs

NAMESPACES = {"native": "ntm_fast", "triton": "ntm_fast_triton"}


def test_table_covers_the_reference_and_validation():
    assert set(OP_NAMES) == set(reference.__all__) - {"uniform_shift"}
    assert set(OP_NAMES) == set(ops.__all__)
    for spec in OPS.values():
        assert spec.reference is getattr(reference, spec.name)
        assert spec.check is getattr(validation, f"check_{spec.name}")
        assert set(spec.args) <= set(ARG_SHAPES)
        assert list(inspect.signature(spec.reference).parameters) == list(spec.args)


@pytest.mark.parametrize("op", OP_NAMES)
def test_public_and_backend_signatures_follow_the_table(op):
    params = list(inspect.signature(getattr(ops, op)).parameters)
    assert params == [*OP_ARGS[op], "backend"]
    for name in NAMESPACES:
        mod = backends.module(name)
        assert op in mod.__all__
        fn = getattr(mod, op)
        assert fn.__name__ == op and fn.__module__ == mod.__name__
        assert list(inspect.signature(fn).parameters) == list(OP_ARGS[op])


@pytest.mark.parametrize("backend", list(NAMESPACES))
@pytest.mark.parametrize("op", OP_NAMES)
def test_kernel_schemas_match_the_table(op, backend):
    """The C++ schemas (csrc/registration.cpp) and the Triton custom ops name the table's
    arguments: ``<op>_fwd(*args) -> Tensor``, ``<op>_bwd(grad, *args) -> one per argument``."""
    if backend == "native":
        from ntm_fast import native_backend

        if native_backend._C is None:
            pytest.skip(f"native extension not built: {native_backend.unavailable_reason('cpu')}")
    else:
        pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    backends.module(backend)  # registers the ops
    ns = getattr(torch.ops, NAMESPACES[backend])
    fwd = getattr(ns, f"{op}_fwd").default._schema
    bwd = getattr(ns, f"{op}_bwd").default._schema
    assert [a.name for a in fwd.arguments] == list(OP_ARGS[op])
    assert len(fwd.returns) == 1
    assert [a.name for a in bwd.arguments] == ["grad", *OP_ARGS[op]]
    assert len(bwd.returns) == len(OP_ARGS[op])


@pytest.mark.parametrize("op", OP_NAMES)
def test_fake_shapes_match_the_reference(op):
    args = make_inputs(op, 2, 3, 7, 5, 3)
    out = reference.__dict__[op](*args)
    assert tuple(OPS[op].out_shape(*args)) == tuple(out.shape)
    fake = OPS[op].fake_fwd(*(a.to("meta") for a in args))
    assert fake.shape == out.shape and fake.device.type == "meta"
    grads = OPS[op].fake_bwd(out.to("meta"), *(a.to("meta") for a in args))
    assert [g.shape for g in grads] == [a.shape for a in args]


def test_input_factory_draws_valid_values():
    g = torch.Generator().manual_seed(3)
    v = draw(list(ARG_SHAPES), 3, 2, 9, 4, 5, generator=g, beta=(1.0, 2.0))
    for name, t in v.items():
        assert t.shape == tuple(dict(B=3, H=2, N=9, W=4, S=5)[c] for c in ARG_SHAPES[name])
        assert t.dtype == torch.float64
    assert ((v["beta"] >= 1) & (v["beta"] <= 2)).all()
    for name in ("gate", "erase"):
        assert ((v[name] >= 0) & (v[name] <= 1)).all()
    assert (v["gamma"] >= 1).all() and (v["gamma"] <= RANGES["gamma"][1]).all()
    for name in ("shift", "w", "w_prev", "w_content"):
        assert (v[name] >= 0).all()
        torch.testing.assert_close(
            v[name].sum(-1), torch.ones(v[name].shape[:-1], dtype=torch.float64)
        )
    for op in OP_NAMES:  # the backends' validation accepts them
        OPS[op].check(*make_inputs(op, 2, 2, 5, 3, 3, torch.float32))
    with pytest.raises(TypeError, match="unknown ranges"):
        draw(["beta"], 1, 1, 1, 1, 1, betta=(0.0, 1.0))


def test_input_factory_is_reproducible():
    a = make_inputs("address", 2, 2, 6, 3, 3, generator=torch.Generator().manual_seed(5))
    b = make_inputs("address", 2, 2, 6, 3, 3, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
