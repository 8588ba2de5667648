"""Bad input to ``torch.ops.ntm_fast.sequence_fwd`` / ``sequence_bwd`` called directly: each
must raise a clear error (TypeError/ValueError/RuntimeError) whose message names the argument,
never crash or run on garbage; and valid extreme inputs (large β, γ = 50, zero memory) give no
NaN and match the reference.

Cases marked xfail(strict=True) are known gaps of the op found by these tests (the marker comes off
when the op is fixed). Wrong shapes fed to sequence_bwd are all *larger* than expected, so the
unchecked cases read within their buffers here; smaller ones read and write out of bounds.
"""

from __future__ import annotations

import pytest
import torch
from test_native_sequence import flat, make_ref, one_thread, op_params, outputs_and_grads
from tolerances import SEQUENCE, assert_close_allowing

from ntm_fast import FastNTM, native_sequence

pytestmark = pytest.mark.skipif(
    not native_sequence.available(torch.device("cpu")),
    reason="the native whole-sequence op is not built here",
)
one_thread = one_thread  # autouse: see test_native_sequence.py
OP = torch.ops.ntm_fast
ERRORS = (TypeError, ValueError, RuntimeError)
FWD_ARGS = ["x", "memory", "reads", "weightings", "state", "params", "lengths", "read_heads",
            "shift_range", "uniform", "lstm", "save"]  # fmt: skip
BWD_ARGS = ["grads", "x", "state", "params", "saved", "lengths", "read_heads", "shift_range",
            "uniform", "lstm"]  # fmt: skip
T, B = 4, 3


def valid_fwd(lstm=True):
    """Valid sequence_fwd arguments: R = 2 read heads, 1 write head, k = 1, N = 8, W = 4."""
    c = dict(ctrl="lstm" if lstm else "feedforward", layers=2, R=2, Wh=1, k=1, mode="softmax",
             N=8, W=4, C=5, F=3, O=2, seed=0)  # fmt: skip
    m = make_ref(c)
    s = m.initial_state(B)
    d = lambda t: t.detach().contiguous()  # noqa: E731
    return dict(x=torch.rand(T, B, 3, dtype=torch.float64), memory=d(s.memory),
                reads=d(s.read_vectors), weightings=d(s.weightings),
                state=[d(t) for t in s.controller], params=[d(p) for p in op_params(m)],
                lengths=torch.tensor([4, 0, 2]), read_heads=2, shift_range=1, uniform=False,
                lstm=lstm, save=True)  # fmt: skip


def valid_bwd(lstm=True):
    a = valid_fwd(lstm)
    out = OP.sequence_fwd(*a.values())
    n = 4 + len(a["state"])
    grads = [torch.randn_like(t) for t in out[:n]]
    rest = {k: a[k] for k in BWD_ARGS[1:] if k != "saved"}
    return dict(grads=grads, saved=list(out[n:]), **rest)


def case(name, arg, spoil, pattern, mark=()):
    return pytest.param(arg, spoil, pattern, id=name, marks=mark)


def _set(i, v):
    return lambda lst: [*lst[:i], v(lst[i]), *lst[i + 1 :]]


WRONG_SHAPE, WRONG_DTYPE = "expected shape", "expected (a floating )?dtype"
# case(id, argument, how to spoil it (applied to the valid value), message pattern[, xfail])
FWD_CASES = [
    case("x 2-d", "x", lambda x: x[0], r"x: " + WRONG_SHAPE),
    case("x int", "x", lambda x: x.long(), r"x: " + WRONG_DTYPE),
    case("x half", "x", lambda x: x.half(), r"x: " + WRONG_DTYPE),
    case("x bfloat16", "x", lambda x: x.bfloat16(), r"x: " + WRONG_DTYPE),
    case("memory batch", "memory", lambda t: t[:2], r"memory: " + WRONG_SHAPE),
    case("memory dtype", "memory", lambda t: t.float(), r"memory: " + WRONG_DTYPE),
    case("memory half", "memory", lambda t: t.half(), r"memory: " + WRONG_DTYPE),
    case("reads heads", "reads", lambda t: t[:, :1], r"reads: " + WRONG_SHAPE),
    case("reads width", "reads", lambda t: t[..., :3], r"reads: " + WRONG_SHAPE),
    case("reads dtype", "reads", lambda t: t.float(), r"reads: " + WRONG_DTYPE),
    case("weightings N", "weightings", lambda t: t[..., :5], r"weightings: " + WRONG_SHAPE),
    case("weightings no write head", "weightings", lambda t: t[:, :2], r"weightings: expected H"),
    case("weightings dtype", "weightings", lambda t: t.float(), r"weightings: " + WRONG_DTYPE),
    case("state count", "state", lambda s: s[:1], r"state: expected 2 tensors"),
    case("state h shape", "state", _set(0, lambda t: t[:, :2]), r"state \(h\): " + WRONG_SHAPE),
    case("state c dtype", "state", _set(1, lambda t: t.float()), r"state \(c\): " + WRONG_DTYPE),
    case("params count", "params", lambda p: p[:-1], r"params: expected 4 tensors per"),
    case("params none", "params", lambda p: [], r"params: expected"),
    case("params layer", "params", lambda p: p[4:], r"params\[0\] \(layer weight\)"),
    case("params 1-d", "params", _set(0, lambda t: t[0]), r"params\[0\]"),
    case("weight_hh", "params", _set(1, lambda t: t[:, :-1]), r"params \(weight_hh\)"),
    case("bias_ih dtype", "params", _set(2, lambda t: t.float()), r"params \(bias_ih\)"),
    case("heads.weight", "params", _set(8, lambda t: t[:-1]), r"params \(heads.weight\)"),
    case("heads.bias", "params", _set(9, lambda t: t[:-1]), r"params \(heads.bias\)"),
    case("output.weight", "params", _set(10, lambda t: t[:, :-1]), r"params \(output.weight\)"),
    case("output.bias", "params", _set(11, lambda t: t[:-1]), r"params \(output.bias\)"),
    case("lengths 2-d", "lengths", lambda t: t[None], r"lengths: expected shape \(B,\)"),
    case("lengths batch", "lengths", lambda t: t[:2], r"lengths: expected shape \(B,\)"),
    case("lengths float", "lengths", lambda t: t.double(), r"lengths: .*int64"),
    case("lengths int32", "lengths", lambda t: t.int(), r"lengths: .*int64"),
    case("read_heads 0", "read_heads", lambda r: 0, r"read_heads: expected >= 1"),
    case("read_heads -1", "read_heads", lambda r: -1, r"read_heads: expected >= 1"),
    case("read_heads 1", "read_heads", lambda r: 1, r"reads: " + WRONG_SHAPE),
    case("read_heads 3", "read_heads", lambda r: 3, r"reads: " + WRONG_SHAPE),
    case("shift_range N", "shift_range", lambda k: 4, r"shift_range: expected 0 <= k"),
    case("shift_range -1", "shift_range", lambda k: -1, r"shift_range: expected 0 <= k"),
    case("shift_range 2", "shift_range", lambda k: 2, r"params \(heads.weight\)"),
    case("uniform flag", "uniform", lambda u: True, r"params \(heads.weight\)"),
    case("lstm flag", "lstm", lambda u: False, r"state: expected 0 tensors"),
]
BAD_LENGTHS = [
    pytest.param([-1, 2, 4], id="negative"),
    pytest.param([5, 2, 4], id="above-T"),
]


def _call(op, names, args):
    return op(*(args[n] for n in names))  # in the schema's order, whatever the dict's


@pytest.mark.parametrize("arg, spoil, pattern", FWD_CASES)
def test_sequence_fwd_rejects(arg, spoil, pattern):
    a = valid_fwd()
    a[arg] = spoil(a[arg])
    with pytest.raises(ERRORS, match="ntm_fast::sequence_fwd: " + pattern):
        _call(OP.sequence_fwd, FWD_ARGS, a)


def test_valid_arguments_run_feedforward_and_non_contiguous():
    a = valid_fwd(lstm=False)
    a["memory"] = a["memory"].transpose(1, 2).contiguous().transpose(1, 2)
    a["x"] = a["x"].transpose(0, 1).contiguous().transpose(0, 1)
    out = _call(OP.sequence_fwd, FWD_ARGS, a)
    a["memory"], a["x"] = a["memory"].contiguous(), a["x"].contiguous()
    for u, v in zip(out, _call(OP.sequence_fwd, FWD_ARGS, a), strict=True):
        assert torch.equal(u, v)


@pytest.mark.parametrize("values", BAD_LENGTHS)
@pytest.mark.parametrize("op", ["fwd", "bwd"])
def test_lengths_out_of_range_rejected(op, values):
    a = valid_fwd() if op == "fwd" else valid_bwd()
    a["lengths"] = torch.tensor(values)
    with pytest.raises(ValueError, match=r"lengths"):
        _call(OP.sequence_fwd if op == "fwd" else OP.sequence_bwd,
              FWD_ARGS if op == "fwd" else BWD_ARGS, a)  # fmt: skip


NO_DEVICE_CHECK = pytest.mark.xfail(
    strict=True,
    reason="no Meta (or CUDA) kernel: the dispatcher rejects mixed devices before the op's "
    "argument checks, with a message that does not name the argument",
)


@pytest.mark.parametrize("arg", ["memory", "reads", "weightings", "state", "params", "lengths"])
def test_sequence_fwd_wrong_device(arg):
    a = valid_fwd()
    v = a[arg]
    a[arg] = [t.to("meta") for t in v] if isinstance(v, list) else v.to("meta")
    with pytest.raises((*ERRORS, NotImplementedError)) as info:
        _call(OP.sequence_fwd, FWD_ARGS, a)
    assert "sequence_fwd" in str(info.value)


@NO_DEVICE_CHECK
def test_sequence_fwd_wrong_device_names_the_argument():
    a = valid_fwd()
    a["memory"] = a["memory"].to("meta")
    with pytest.raises(ERRORS, match=r"memory: expected device"):
        _call(OP.sequence_fwd, FWD_ARGS, a)


BIG = lambda t: torch.zeros(t.shape[0] + 1, *t.shape[1:], dtype=t.dtype)  # noqa: E731
BWD_CASES = [
    case("grads count", "grads", lambda g: g[:-1], r"grads: expected 6"),
    case("grads logits shape", "grads", _set(0, BIG), r"grads\[0\] \(logits\): expected shape"),
    case("grads memory shape", "grads", _set(1, BIG), r"grads\[1\] \(memory\): expected shape"),
    case("grads c shape", "grads", _set(5, BIG), r"grads\[5\] \(c\): expected shape"),
    case(
        "grads dtype",
        "grads",
        _set(0, lambda t: t.float()),
        r"grads\[0\] \(logits\): .*dtype",
    ),
    case("x dtype", "x", lambda x: x.float(), r"(x|saved)[^:]*: expected"),
    case("x batch", "x", lambda x: x[:, :2], r"(x|saved)[^:]*: expected"),
    case("x 0-d", "x", lambda x: x[0, 0, 0], r"x: " + WRONG_SHAPE),
    case("x shorter than saved", "x", lambda x: x[:2], r"(x|saved)[^:]*: expected"),
    case("state count", "state", lambda s: s[:1], r"state: expected 2 tensors"),
    case("params count", "params", lambda p: p[:-1], r"params: expected"),
    case("heads.weight", "params", _set(8, lambda t: t[:-1]), r"params \(heads.weight\)"),
    case("saved count", "saved", lambda s: s[:-1], r"saved: expected"),
    case("saved none", "saved", lambda s: [], r"saved: expected"),
    case("saved rank", "saved", _set(0, lambda t: t[0]), r"saved\[0\]"),
    case("saved dtype", "saved", _set(5, lambda t: t.float()), r"saved[^:]*: expected"),
    case("saved strided", "saved", _set(4, lambda t: t.transpose(0, 1)), r"saved[^:]*: expected"),
    case("saved memory T", "saved", _set(0, BIG), r"saved\[0\] \(memory history\): expected shape"),
    case(
        "saved raw shape",
        "saved",
        _set(2, BIG),
        r"saved\[2\] \(raw head param",
    ),
    case("saved cells shape", "saved", _set(6, BIG), r"saved \(cells\): expected shape"),
    case("lengths batch", "lengths", lambda t: t[:2], r"lengths: expected shape \(B,\)"),
    case("lengths dtype", "lengths", lambda t: t.int(), r"lengths: .*int64"),
    case("read_heads 0", "read_heads", lambda r: 0, r"read_heads: expected >= 1"),
    case("shift_range N", "shift_range", lambda k: 4, r"shift_range: expected 0 <= k"),
    case("lstm flag", "lstm", lambda u: False, r"(state|saved|grads): expected"),
]


@pytest.mark.parametrize("arg, spoil, pattern", BWD_CASES)
def test_sequence_bwd_rejects(arg, spoil, pattern):
    a = valid_bwd()
    a[arg] = spoil(a[arg])
    with pytest.raises(ERRORS, match="ntm_fast::sequence_bwd: " + pattern):
        _call(OP.sequence_bwd, BWD_ARGS, a)


def test_sequence_bwd_missing_grads_are_zeros():
    a = valid_bwd()
    a["grads"] = [a["grads"][0], None, None, None, None, None]
    sparse = _call(OP.sequence_bwd, BWD_ARGS, a)
    a["grads"] = [a["grads"][0]] + [torch.zeros_like(t) for t in valid_bwd()["grads"][1:]]
    for u, v in zip(sparse, _call(OP.sequence_bwd, BWD_ARGS, a), strict=True):
        assert torch.equal(u, v)


# -- valid extreme values: no NaN, same as the reference
EXTREMES = ["beta 1e4", "gamma 50", "zero memory", "all"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("regime", EXTREMES)
def test_extreme_values_finite_and_match_reference(regime, dtype):
    c = dict(ctrl="lstm", layers=1, R=2, Wh=1, k=1, mode="softmax", N=8, W=4, C=5, F=3, O=2,
             seed=4)  # fmt: skip
    ref = make_ref(c, dtype)
    L, H = ref.layout, 3
    off = dict(zip(L.groups, [sum(L.sizes[:i]) for i in range(len(L.sizes))], strict=True))
    beta_max = 50.0
    with torch.no_grad():  # the heads' bias sets β = softplus(bias) and γ = 1 + softplus(bias)
        if regime in ("beta 1e4", "all"):
            beta_max = 1e4
            ref.heads.bias[off["beta"] : off["beta"] + H] = 1e4
        if regime in ("gamma 50", "all"):
            ref.heads.bias[off["gamma"] : off["gamma"] + H] = 49.0
            ref.heads.weight[off["gamma"] : off["gamma"] + H] = 0.0
        if regime in ("zero memory", "all"):
            ref.memory_bias.zero_()
    fast = FastNTM.from_reference(ref, backend="native")
    x = torch.rand(6, 3, 3, dtype=dtype, requires_grad=True)
    lengths = torch.tensor([6, 3, 0])
    res = []
    for m in (ref, fast):
        logits, state = m(x, lengths=lengths)
        res.append(outputs_and_grads(flat(logits, state), [x, *m.parameters()]))
    (r_out, r_grads, _), (f_out, f_grads, _) = res
    # tests/tolerances.py: SEQUENCE, times β_max / 50 beyond β = 50 (the β-scaled rows there)
    t, f = SEQUENCE[dtype], max(1.0, beta_max / 50)
    for i, (a, e) in enumerate(zip(f_out + f_grads, r_out + r_grads, strict=True)):
        assert torch.isfinite(a).all() and torch.isfinite(e).all(), f"{regime}: NaN/inf in {i}"
        at, rt = ("g_atol", "g_rtol") if i >= len(f_out) else ("atol", "rtol")
        assert_close_allowing(a, e, t[at] * f, t[rt] * f, f"{regime} {dtype} tensor {i}")
