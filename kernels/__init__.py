"""Triton kernels for the NTM memory ops (installed as ``ntm_fast._kernels``).

Importing the package mends one fault of older Triton interpreters (``TRITON_INTERPRET=1``, the
CPU test mode) first: :func:`mend_interpreter_scalar_index`.
"""

from __future__ import annotations


def mend_interpreter_scalar_index() -> bool:
    """Make the Triton interpreter's ``int(scalar tensor)`` work with NumPy >= 2.4.

    The interpreter holds a kernel's scalar argument (a runtime size such as ``W``) as a
    one-element array, and Triton up to 3.6 turns it into a Python int with ``int(array)``,
    which NumPy 2.4 refuses ("only 0-dimensional arrays can be converted to Python scalars";
    triton-lang/triton#9171): every ``range(0, W, BW)`` over a runtime size then fails. Later
    Triton squeezes the array first; this wraps the interpreter's tensor patching to do the
    same on any version (a no-op where it is already so). Compiled kernels are not affected.
    Returns True when the interpreter was wrapped (now or before).
    """
    try:
        from triton.runtime import interpreter
    except ImportError:  # no Triton, or one without an interpreter: nothing to mend
        return False
    patch = getattr(interpreter, "_patch_lang_tensor", None)
    if patch is None:
        return False
    if getattr(patch, "_ntm_fast_mended", False):
        return True

    def index(self) -> int:
        return int(self.handle.data.squeeze())

    def patch_lang_tensor(tensor, *rest, **kwargs):
        patch(tensor, *rest, **kwargs)
        scope = rest[0] if rest else kwargs.get("scope")
        if scope is not None and hasattr(scope, "set_attr"):
            scope.set_attr(tensor, "__index__", index)  # undone with the rest on exit
        else:
            tensor.__index__ = index

    patch_lang_tensor._ntm_fast_mended = True
    interpreter._patch_lang_tensor = patch_lang_tensor
    return True


mend_interpreter_scalar_index()
