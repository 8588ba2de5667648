"""The fast backends reject bad arguments with the reference's exact messages (the Python
validation every backend shares, and the native ops' own C++ checks when called directly); the
native extension's constants and NaN-poisoning switch mirror the Python side's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from devices import NATIVE_BACKENDS, OP_BACKENDS
from op_checks import inputs, need, op_fn

from ntm_fast import _buffers
from ntm_fast import reference as R
from ntm_fast.numerics import COSINE_EPS, SHARPEN_TINY

F32 = torch.float32
BAD_CASES = [
    ("content_address", lambda a: (a[0][0], a[1], a[2])),  # memory rank 2
    ("content_address", lambda a: (a[0], a[1][:, :, :-1], a[2])),  # key width
    ("content_address", lambda a: (a[0], a[1], a[2].double())),  # beta dtype
    ("content_address", lambda a: (a[0], a[1], a[2].long())),  # non-float beta
    ("interpolate", lambda a: (a[0], a[1][:, :, :-1], a[2])),
    ("shift_convolve", lambda a: (a[0], a[1].new_ones(*a[1].shape[:2], 2))),  # even S
    ("shift_convolve", lambda a: ([1.0], a[1])),  # not a tensor
    ("sharpen", lambda a: (a[0], a[1][:, :1])),
    ("sharpen", lambda a: (a[0], "1.0")),  # not a tensor
    ("address", lambda a: (*a[:4], a[4].repeat(1, 1, 9)[..., :21], *a[5:])),  # S > N
    ("address", lambda a: (*a[:4], a[4][..., :2], *a[5:])),  # even S
    ("address", lambda a: (a[0].transpose(1, 2), *a[1:])),  # memory (B, W, N)
    ("address", lambda a: (*a[:6], a[6].half())),
    ("read", lambda a: (a[0], a[1][:1])),
    ("read", lambda a: (a[0], a[1].double())),  # w dtype
    ("write", lambda a: (a[0], a[1], a[2][..., :-1], a[3])),
    ("write", lambda a: (a[0], a[1], a[2][:, :, :1], a[3])),
    ("write", lambda a: (a[0], a[1], a[2], a[3].to("meta"))),  # device mismatch
]


@pytest.mark.parametrize(("backend", "device"), OP_BACKENDS)
@pytest.mark.parametrize(("op", "mutate"), BAD_CASES)
def test_validation_messages_match_reference(op, mutate, backend, device):
    need(backend, device)
    bad = mutate(inputs(op, 2, 2, 9, 4, 3, F32, device))
    with pytest.raises((TypeError, ValueError)) as ref_err:
        getattr(R, op)(*bad)
    with pytest.raises(type(ref_err.value)) as err:
        op_fn(backend, op)(*bad)
    assert str(err.value) == str(ref_err.value)


@pytest.mark.parametrize(("backend", "device"), NATIVE_BACKENDS)
def test_cpp_checks_name_the_argument(backend, device):
    """The native ops check their arguments themselves when called directly (no Python
    validation)."""
    need(backend, device)
    m, k, b = inputs("content_address", 2, 2, 9, 4, 3, F32, device)
    with pytest.raises(ValueError, match=r"key: expected shape \(B, H, W\)"):
        torch.ops.ntm_fast.content_address_fwd(m, k[..., :-1], b)
    with pytest.raises(TypeError, match=r"beta: expected dtype Float \(the dtype of memory\)"):
        torch.ops.ntm_fast.content_address_fwd(m, k, b.double())
    w, s = inputs("shift_convolve", 2, 2, 5, 4, 3, F32, device)
    with pytest.raises(ValueError, match=r"shift: expected an odd number of shifts"):
        torch.ops.ntm_fast.shift_convolve_fwd(w, w.new_ones(2, 2, 7))
    with pytest.raises(ValueError, match=r"grad: expected shape"):
        torch.ops.ntm_fast.shift_convolve_bwd(w.new_ones(2, 2, 4), w, s)


def test_native_poison_mirrors_buffers_switch():
    need("native", "cpu")
    from ntm_fast import _C, native_backend

    assert _buffers.poison_enabled(), "conftest should have turned poisoning on"
    args = inputs("read", 1, 1, 4, 3, 1, F32, "cpu")
    try:
        _buffers.set_poison(False)
        native_backend.read(*args)
        assert not _C.poison_enabled()
        _buffers.set_poison(True)
        native_backend.read(*args)
        assert _C.poison_enabled()
    finally:
        _buffers.set_poison(True)
        native_backend.read(*args)


def test_native_constants_match_numerics():
    header = (Path(__file__).parents[2] / "csrc" / "ntm_math.h").read_text()
    eps = float(re.search(r"NTM_COSINE_EPS = ([0-9.e+-]+);", header).group(1))
    tiny = float(re.search(r"NTM_SHARPEN_TINY = ([0-9.e+-]+);", header).group(1))
    assert (eps, tiny) == (COSINE_EPS, SHARPEN_TINY)
    hexes = dict(re.findall(r"NTM_(FLOAT16|BFLOAT16)_MAX = (0x[0-9a-fp.+-]+)f;", header))
    assert float.fromhex(hexes["FLOAT16"]) == torch.finfo(torch.float16).max
    assert float.fromhex(hexes["BFLOAT16"]) == torch.finfo(torch.bfloat16).max
