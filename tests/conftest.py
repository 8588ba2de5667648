"""Test-wide setup.

* TRITON_INTERPRET=1 must be set before any @triton.jit module is imported, so the Triton
  kernels run on CPU tensors here (CI has no GPU). Set NTM_FAST_TRITON_COMPILED=1 on a GPU
  machine to test the compiled kernels instead.
* Fast-backend outputs are poisoned with NaN (see ntm_fast._buffers), so an element a kernel
  forgets to write fails the equivalence tests.
"""

import os

if os.environ.get("NTM_FAST_TRITON_COMPILED") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ["NTM_FAST_POISON_OUTPUTS"] = "1"

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=False)
settings.register_profile("long", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
