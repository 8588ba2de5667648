"""Lint: the test modules that take their device from tests/devices.py (the one place that says
where tensors live: ``DEVICE`` for Triton, ``DEVICES``/``DEVICE_PARAMS`` for FastNTM and the
native ops) make every tensor on a device they name.

A ``torch.zeros(...)``-style factory call without ``device=`` builds a CPU tensor next to CUDA
ones: fine under the interpreter (CI), a certain failure on the GPU run. A call passes when it
names ``device=``, when it is moved at once (``torch.randn(...).to(DEVICE)``, or ``.to(t)``
onto a tensor ``t``'s device), or when its line says why it stays on the CPU (``# cpu:
<reason>``, e.g. drawn from a CPU generator and moved later). ``*_like`` factories and
``Tensor.new_*`` inherit the device and are not checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
FACTORIES = {
    "arange", "as_tensor", "empty", "eye", "full", "linspace", "ones", "rand", "randint",
    "randn", "randperm", "tensor", "zeros",
}  # fmt: skip


def device_modules(names: set[str] | None = None) -> list[Path]:
    """test modules that import from tests/devices.py (only ``names`` of it, if given)."""
    out = []
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "devices":
                if names is None or any(a.name in names for a in node.names):
                    out.append(path)
                    break
    return out


def _is_device(node: ast.expr) -> bool:
    """``DEVICE``, ``device``, ``x.device``, a string such as ``"cuda"``, or a tensor ``t``
    (``.to(t)``: its device and dtype); not a dtype (``torch.float64``, ``dtype``)."""
    if isinstance(node, ast.Name):
        return "dtype" not in node.id.lower()
    if isinstance(node, ast.Attribute):
        return node.attr == "device"
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def undeviced_calls(source: str) -> list[int]:
    """Lines of torch factory calls that do not say their device."""
    tree = ast.parse(source)
    lines = source.splitlines()
    parent = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    bad = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "torch"
            and node.func.attr in FACTORIES
        ):
            continue
        if any(k.arg == "device" for k in node.keywords):
            continue
        up = parent.get(node)
        if isinstance(up, ast.Attribute) and up.attr == "cuda":
            continue
        if isinstance(up, ast.Attribute) and up.attr == "to":
            call = parent.get(up)
            if isinstance(call, ast.Call) and (
                any(_is_device(a) for a in call.args[:1])
                or any(k.arg == "device" for k in call.keywords)
            ):
                continue
        if "# cpu:" in lines[node.lineno - 1]:
            continue
        bad.append(node.lineno)
    return sorted(bad)


def test_device_modules_found():
    names = {p.name for p in device_modules()}
    assert {"test_backend_ops.py", "test_backend_registration.py", "test_fast_ntm.py"} <= names
    assert {"test_backend_numerics.py", "test_backend_extremes.py"} <= names


@pytest.mark.parametrize("path", device_modules(), ids=lambda p: p.name)
def test_every_tensor_takes_the_device(path):
    bad = undeviced_calls(path.read_text())
    where = ", ".join(f"{path.name}:{n}" for n in bad)
    assert not bad, f"tensor made without device= (CPU next to CUDA on a GPU run): {where}"


def test_lint_catches_the_bug_class():
    src = (
        "import torch\n"
        "a = torch.zeros(3)\n"  # flagged
        "b = torch.ones(3, device=DEVICE)\n"
        "c = torch.randn(3, generator=g).to(DEVICE)\n"
        "d = torch.rand(3).to(torch.float64)\n"  # a dtype move only: flagged
        "e = torch.full((2,), 1.0)  # cpu: compared on the CPU\n"
        "f = torch.randn(3, dtype=torch.float64).to(out)\n"  # onto a tensor's device
        "h = torch.ones(3).to(dtype)\n"  # flagged
    )
    assert undeviced_calls(src) == [2, 5, 8]


def test_modules_naming_cuda_take_their_devices_from_the_one_place():
    """A test module that makes CUDA tensors (it names ``"cuda"``) imports from tests/devices.py,
    so the lint above covers it."""
    linted = set(device_modules())
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        names_cuda = any(isinstance(n, ast.Constant) and n.value == "cuda" for n in ast.walk(tree))
        if names_cuda and path.name != Path(__file__).name:
            assert path in linted, f"{path.name} names 'cuda': take the device from devices.py"
