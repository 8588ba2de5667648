"""Every rule of ntm_fast.validation, through every public op of every backend: the one
validation home, proven for all of them.

Each case runs through the reference module directly (the contract), then for each backend in
BACKENDS through ``ntm_fast.ops.<op>(..., backend=name)`` and through the backend module's own
function. Every call must raise the same exception type with the same message as the reference
(and the message must name the argument and describe what it got). A backend that cannot run
here is skipped with :func:`ntm_fast.backends.unavailable_reason`'s explanation. Triton runs
under the interpreter on CPU (tests/conftest.py); the rejection happens before any launch, so
those cases cost nothing. The end of the file checks the module level: ReferenceNTM and FastNTM
on each backend reject bad ``x``, ``lengths`` and ``state`` with the same errors.
"""

from __future__ import annotations

import pytest
import torch

from ntm_fast import FastNTM, ReferenceNTM, backends, ops, reference
from ntm_fast.op_table import ARG_SHAPES, OP_ARGS

BACKENDS = list(backends.BACKEND_NAMES)  # reference, triton, native

# (name, dims) in signature order, which is also the order validation checks them in.
SPECS: dict[str, list[tuple[str, str]]] = {
    op: [(name, "".join(ARG_SHAPES[name])) for name in args] for op, args in OP_ARGS.items()
}
SIZES = dict(B=2, H=3, N=5, W=4, S=3)  # all distinct, so a swapped dimension is caught

# callers: the reference module directly (None), then for each backend both
# ("ops", name) = ops.<op>(backend=name) and ("module", name) = backends.module(name).<op>
CALLERS = [None] + [(how, b) for b in BACKENDS for how in ("ops", "module")]


def caller_id(c):
    return "reference-module" if c is None else f"{c[0]}[{c[1]}]"


def _skip_unavailable(caller) -> None:
    if caller is not None:
        reason = backends.unavailable_reason(caller[1], torch.device("cpu"))
        if reason is not None:
            pytest.skip(f"backend {caller[1]!r} unavailable on cpu: {reason}")


def invoke(caller, op: str, args):
    if caller is None:
        return getattr(reference, op)(*args)
    how, name = caller
    if how == "ops":
        return getattr(ops, op)(*args, backend=name)
    return getattr(backends.module(name), op)(*args)


def _raised(caller, op: str, args) -> BaseException:
    with pytest.raises(Exception) as info:
        invoke(caller, op, args)
    return info.value


def good_args(op: str) -> list[torch.Tensor]:
    """Valid inputs: gate and erase in (0, 1), γ >= 1, β > 0, weightings and shifts normalised."""
    out = []
    for name, dims in SPECS[op]:
        shape = [SIZES[d] for d in dims]
        t = 0.1 + 0.8 * torch.rand(*shape, dtype=torch.float64)
        if name == "gamma":
            t = t + 1
        if dims in ("BHS", "BHN"):
            t = t / t.sum(-1, keepdim=True)
        out.append(t)
    return out


def _shape_str(t) -> str:
    return f"shape {tuple(t.shape)}"


def build_cases():
    """(id, op, arg index, replacement builder, exception type, text the message must contain)."""
    cases = []

    def add(op, i, rule, make, exc, text_of):
        name = SPECS[op][i][0]
        cases.append(pytest.param(op, i, make, exc, text_of, id=f"{op}-{name}-{rule}"))

    for op, spec in SPECS.items():
        for i, (_name, dims) in enumerate(spec):
            # wrong rank, both ways
            add(op, i, "rank+1", lambda t: t.unsqueeze(0), ValueError, _shape_str)
            add(op, i, "rank-1", lambda t: t[0], ValueError, _shape_str)
            # non-floating dtypes and non-tensors
            add(op, i, "int64", lambda t: t.to(torch.int64), TypeError, _shape_str)
            add(op, i, "bool", lambda t: t > 0, TypeError, _shape_str)
            add(op, i, "list", lambda t: t.tolist(), TypeError, lambda _: "got list")
            bound = set("".join(d for _, d in spec[:i]))
            for p, label in enumerate(dims):
                if label not in bound:  # an empty free dimension: "expected H >= 1"

                    def empty(t, p=p):
                        shape = list(t.shape)
                        shape[p] = 0
                        return torch.rand(*shape, dtype=t.dtype)

                    add(op, i, f"empty-{label}", empty, ValueError,
                        lambda _, label=label: f"expected {label} >= 1")  # fmt: skip
            if i > 0:
                # mismatched B/H/N/W: a dimension already fixed by an earlier argument
                bound = set("".join(d for _, d in spec[:i]))
                for p, label in enumerate(dims):
                    if label in bound:

                        def grow(t, p=p):
                            shape = list(t.shape)
                            shape[p] += 1
                            return torch.rand(*shape, dtype=t.dtype)

                        add(op, i, f"mismatch-{label}", grow, ValueError, _shape_str)
                # mixed dtypes and devices (meta needs no GPU)
                add(op, i, "float32", lambda t: t.float(), TypeError, _shape_str)
                add(op, i, "float16", lambda t: t.half(), TypeError, _shape_str)
                add(op, i, "meta", lambda t: t.to("meta"), ValueError, _shape_str)
            if dims == "BHS":
                for S, rule in [(2, "S-even"), (4, "S-even-4"), (7, "S>N")]:

                    def shifts(t, S=S):
                        return torch.full((*t.shape[:2], S), 1 / S, dtype=t.dtype)

                    add(op, i, rule, shifts, ValueError, _shape_str)
    return cases


@pytest.mark.parametrize("caller", CALLERS, ids=caller_id)
@pytest.mark.parametrize("op", list(SPECS))
def test_good_inputs_accepted(caller, op):
    # the baseline of every case below is valid, so each failure is due to its one change
    _skip_unavailable(caller)
    args = good_args(op)
    out = invoke(caller, op, args)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, getattr(reference, op)(*args))


@pytest.mark.parametrize("caller", CALLERS, ids=caller_id)
@pytest.mark.parametrize("op,i,make,exc,text_of", build_cases())
def test_rule(caller, op, i, make, exc, text_of):
    _skip_unavailable(caller)
    args = good_args(op)
    bad = make(args[i])
    args[i] = bad
    name = SPECS[op][i][0]
    err = _raised(caller, op, args)
    assert type(err) is exc, f"{type(err).__name__}: {err}"
    msg = str(err)
    if caller is not None:  # exactly the reference's error: one validation home
        expected = _raised(None, op, args)
        assert (type(err), msg) == (type(expected), str(expected))
    assert msg.startswith(f"{name}:"), msg
    assert text_of(bad) in msg, msg
    if isinstance(bad, torch.Tensor):
        assert str(bad.dtype) in msg and str(bad.device) in msg, msg


@pytest.mark.parametrize("op", list(SPECS))
def test_unknown_backend(op):
    with pytest.raises(ValueError) as info:
        getattr(ops, op)(*good_args(op), backend="no-such-backend")
    assert type(info.value) is ValueError
    msg = str(info.value)
    assert msg.startswith("backend:"), msg
    assert "'no-such-backend'" in msg
    for name in ("reference", "triton", "native", "auto"):
        assert repr(name) in msg  # lists the valid choices


@pytest.mark.parametrize("shifts", [0, -1, 2, 4])
def test_uniform_shift_rejects_even_or_nonpositive_shifts(shifts):
    with pytest.raises(ValueError) as info:
        reference.uniform_shift(torch.zeros(2, 3, dtype=torch.float64), shifts)
    assert type(info.value) is ValueError
    msg = str(info.value)
    assert msg.startswith("shifts:") and f"got {shifts}" in msg, msg


def test_every_public_op_is_covered():
    # a new public op must get a row in SPECS (uniform_shift has its own test above)
    assert set(reference.__all__) == {*SPECS, "uniform_shift"}
    assert set(ops.__all__) == set(SPECS)


# ---- module level: ReferenceNTM and FastNTM on every backend raise the same errors -------------

T_, B_ = 3, 2
CFG = dict(memory_slots=5, memory_width=4, controller_size=6, read_heads=1, write_heads=1)


def _good_state(m, B=B_):
    s = m.initial_state(B)
    return type(s)(*(t.detach().clone() for t in s[:3]), tuple(t.detach().clone() for t in s[3]))


def _replace(state, **kw):
    return state._replace(**kw)


MODULE_CASES = {
    # name: (x, lengths, state) builder from a good x, module
    "x-list": lambda x, m: (x.tolist(), None, None),
    "x-rank2": lambda x, m: (x[0], None, None),
    "x-rank4": lambda x, m: (x.unsqueeze(0), None, None),
    "x-input_size": lambda x, m: (torch.rand(T_, B_, 4, dtype=x.dtype), None, None),
    "x-int64": lambda x, m: (x.to(torch.int64), None, None),
    "x-float32": lambda x, m: (x.float(), None, None),
    "x-meta": lambda x, m: (x.to("meta"), None, None),
    "x-empty-batch": lambda x, m: (x[:, :0], None, None),
    "lengths-list": lambda x, m: (x, [1, 2], None),
    "lengths-float": lambda x, m: (x, torch.tensor([1.0, 2.0]), None),
    "lengths-bool": lambda x, m: (x, torch.tensor([True, False]), None),
    "lengths-shape": lambda x, m: (x, torch.tensor([1, 2, 3]), None),
    "lengths-negative": lambda x, m: (x, torch.tensor([-1, 2]), None),
    "lengths-too-long": lambda x, m: (x, torch.tensor([1, T_ + 1]), None),
    "lengths-meta": lambda x, m: (x, torch.tensor([1, 2], device="meta"), None),
    "state-list": lambda x, m: (x, None, list(_good_state(m))),
    "state-3-tuple": lambda x, m: (x, None, tuple(_good_state(m))[:3]),
    "state-memory-shape": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), memory=torch.rand(B_, 6, 4, dtype=x.dtype)),
    ),
    "state-memory-batch": lambda x, m: (x, None, _good_state(m, B_ + 1)),
    "state-memory-not-tensor": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), memory=_good_state(m).memory.tolist()),
    ),
    "state-reads-meta": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), read_vectors=_good_state(m).read_vectors.to("meta")),
    ),
    "state-weightings-shape": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), weightings=_good_state(m).weightings[:, :1]),
    ),
    "state-memory-float32": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), memory=_good_state(m).memory.float()),
    ),
    "state-reads-float32": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), read_vectors=_good_state(m).read_vectors.float()),
    ),
    "state-weightings-float32": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), weightings=_good_state(m).weightings.float()),
    ),
    "state-controller-float32": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), controller=tuple(t.float() for t in _good_state(m).controller)),
    ),
    "state-controller-count": lambda x, m: (
        x,
        None,
        _replace(_good_state(m), controller=_good_state(m).controller[:1]),
    ),
    "state-controller-shape": lambda x, m: (
        x,
        None,
        _replace(
            _good_state(m),
            controller=(_good_state(m).controller[0][:, :1], _good_state(m).controller[1]),
        ),
    ),
}

MODULE_CALLERS = ["reference-module"] + [f"fast[{b}]" for b in BACKENDS]


def _module(caller: str):
    ref = ReferenceNTM(3, 2, **CFG).double()
    if caller == "reference-module":
        return ref
    name = caller[len("fast[") : -1]
    reason = backends.unavailable_reason(name, torch.device("cpu"))
    if reason is not None:
        pytest.skip(f"backend {name!r} unavailable on cpu: {reason}")
    return FastNTM.from_reference(ref, backend=name)


def _module_error(m, case):
    x = torch.rand(T_, B_, 3, dtype=torch.float64)
    bad_x, lengths, state = MODULE_CASES[case](x, m)
    with pytest.raises(Exception) as info:
        m(bad_x, state, lengths=lengths)
    return info.value


@pytest.mark.parametrize("caller", MODULE_CALLERS)
def test_module_good_inputs_accepted(caller):
    m = _module(caller)
    x = torch.rand(T_, B_, 3, dtype=torch.float64)
    for state, lengths in [(None, None), (_good_state(m), None), (None, torch.tensor([1, T_]))]:
        out, _ = m(x, state, lengths=lengths)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("caller", MODULE_CALLERS)
@pytest.mark.parametrize("case", list(MODULE_CASES))
def test_module_rule(caller, case):
    err = _module_error(_module(caller), case)
    expected = _module_error(_module("reference-module"), case)
    assert isinstance(expected, TypeError | ValueError), repr(expected)
    argument = case.split("-")[0]
    assert str(expected).startswith(argument), str(expected)  # names the argument
    assert (type(err), str(err)) == (type(expected), str(expected))
