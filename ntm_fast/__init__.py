"""ntm_fast: a fast, exact Neural Turing Machine (Graves, Wayne & Danihelka, 2014).

* :mod:`ntm_fast.reference` - the plain-PyTorch memory ops (the contract).
* :mod:`ntm_fast.ops` - the same ops with a ``backend=`` switch (reference, triton, native).
* :class:`ReferenceNTM` - the recurrent module on the reference ops.
* :class:`FastNTM` - the drop-in on the fused kernels.

This core needs torch only. The training application (``ntm-fast``, the paper's tasks,
evaluation, figures, checkpoints) is :mod:`ntm_fast.train`, built on it; nothing here imports it.
"""

from . import ops, reference
from .backends import BackendUnavailableError
from .fast import FastNTM
from .model import NTMHistory, NTMState, NTMTrace, ReferenceNTM

__all__ = [
    "BackendUnavailableError",
    "FastNTM",
    "NTMHistory",
    "NTMState",
    "NTMTrace",
    "ReferenceNTM",
    "ops",
    "reference",
]
__version__ = "0.1.0"
