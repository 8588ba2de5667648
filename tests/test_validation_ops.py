"""Every rule of ntm_fast.validation, through every public op of ntm_fast.reference and of
ntm_fast.ops for each backend in BACKENDS.

To cover another backend, add its name to BACKENDS: every case below then also runs through
``ntm_fast.ops.<op>(..., backend=name)``.
"""

from __future__ import annotations

import pytest
import torch

from ntm_fast import ops, reference

BACKENDS = ["reference"]

# (name, dims) in signature order, which is also the order validation checks them in.
SPECS: dict[str, list[tuple[str, str]]] = {
    "content_address": [("memory", "BNW"), ("key", "BHW"), ("beta", "BH")],
    "interpolate": [("w_content", "BHN"), ("w_prev", "BHN"), ("gate", "BH")],
    "shift_convolve": [("w", "BHN"), ("shift", "BHS")],
    "sharpen": [("w", "BHN"), ("gamma", "BH")],
    "address": [
        ("memory", "BNW"),
        ("key", "BHW"),
        ("beta", "BH"),
        ("gate", "BH"),
        ("shift", "BHS"),
        ("gamma", "BH"),
        ("w_prev", "BHN"),
    ],
    "read": [("memory", "BNW"), ("w", "BHN")],
    "write": [("memory", "BNW"), ("w", "BHN"), ("erase", "BHW"), ("add", "BHW")],
}
SIZES = dict(B=2, H=3, N=5, W=4, S=3)  # all distinct, so a swapped dimension is caught

# callers: the reference module directly, then ops.<op>(backend=...) for each backend
CALLERS = [None, *BACKENDS]


def caller_id(c):
    return "reference-module" if c is None else f"ops[{c}]"


def invoke(caller, op: str, args):
    if caller is None:
        return getattr(reference, op)(*args)
    return getattr(ops, op)(*args, backend=caller)


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
    out = invoke(caller, op, good_args(op))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("caller", CALLERS, ids=caller_id)
@pytest.mark.parametrize("op,i,make,exc,text_of", build_cases())
def test_rule(caller, op, i, make, exc, text_of):
    args = good_args(op)
    bad = make(args[i])
    args[i] = bad
    name = SPECS[op][i][0]
    with pytest.raises(Exception) as info:
        invoke(caller, op, args)
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    msg = str(info.value)
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
