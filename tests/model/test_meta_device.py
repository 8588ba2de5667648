"""FastNTM on the meta device (shape inference without memory): ``backend="auto"`` falls back
to the reference ops with the documented warning; an explicit fast backend says, naming the
``backend`` argument and the device, why it cannot run there (issue 16)."""

import re

import pytest
import torch

from ntm_fast import FastNTM, ReferenceNTM, backends, validation
from ntm_fast.backends import BackendUnavailableError

SIZES = dict(memory_slots=8, memory_width=4, controller_size=8)


def test_autocast_enabled_is_false_on_devices_without_autocast():
    assert validation.autocast_enabled(torch.device("meta")) is False
    assert validation.autocast_enabled(torch.device("cpu")) is False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert validation.autocast_enabled(torch.device("cpu")) is True


def test_fast_ntm_auto_on_meta_falls_back_to_the_reference(monkeypatch):
    monkeypatch.setattr(backends, "_warned", set())  # the warning is once per process
    ref = ReferenceNTM(9, 8, **SIZES).to("meta")
    fast = FastNTM(9, 8, **SIZES).to("meta")
    x = torch.empty(3, 2, 9, device="meta")
    with pytest.warns(RuntimeWarning, match="no fast backend for meta tensors"):
        out, state = fast(x)
    assert fast.backend == "reference"
    assert out.device.type == "meta" and out.shape == ref(x)[0].shape == (3, 2, 8)
    assert state.memory.shape == (2, 8, 4)


@pytest.mark.parametrize("backend", ["native", "triton"])
def test_fast_ntm_explicit_backend_on_meta_names_the_argument(backend):
    fast = FastNTM(9, 8, backend=backend, **SIZES).to("meta")
    with pytest.raises(BackendUnavailableError, match=re.escape(f"backend={backend!r} on meta")):
        fast(torch.empty(3, 2, 9, device="meta"))
