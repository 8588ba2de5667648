"""The registry of GPU-only tests (tests/gpu_tests.py) stays complete and valid, checked on
the CPU: every test that skips without CUDA and every module that runs compiled Triton on
CUDA is listed for the GPU proof, and every entry names a test that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import gpu_tests
import pytest
from test_device_lint import device_modules

ROOT = Path(__file__).parent.parent
GPU_REASON = re.compile(r"CUDA|GPU", re.IGNORECASE)
DEVICES_SRC = (ROOT / "tests" / "devices.py").read_text()


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def cuda_only_tests(path: Path) -> set[str]:
    """Test functions with a ``skipif`` (on the function or on one of its params) whose
    reason says it needs CUDA or a GPU."""
    source = path.read_text()
    out = set()
    for name, fn in _functions(path).items():
        if not name.startswith("test_"):
            continue
        marks = [ast.get_source_segment(source, d) or "" for d in fn.decorator_list]
        for seg in marks:
            if "skipif" in seg and GPU_REASON.search(seg):
                out.add(name)
            # params carrying CUDA skip marks defined at module level or in tests/devices.py
            # (DEVICE_PARAMS = [...])
            for var in re.findall(r"\b([A-Z_]+)\b", seg):
                for src in (source, DEVICES_SRC):
                    m = re.search(rf"^{var}\s*=\s*\[(.*?)^\]", src, re.MULTILINE | re.DOTALL)
                    if m and "skipif" in m.group(1) and GPU_REASON.search(m.group(1)):
                        out.add(name)
    return out


def _listed(stage_set=("proof", "sanitize")) -> dict[str, set[str] | None]:
    """file -> listed function names (None: the whole file, or every CUDA case of it)."""
    out: dict[str, set[str] | None] = {}
    for t in gpu_tests.GPU_TESTS:
        if t.stage not in stage_set:
            continue
        file, _, func = t.path.partition("::")
        if not func:
            out[file] = None
        elif out.get(file, set()) is not None:
            out.setdefault(file, set()).add(func)
    return out


@pytest.mark.parametrize("entry", gpu_tests.GPU_TESTS, ids=lambda t: f"{t.stage}:{t.path}")
def test_entry_names_existing_tests(entry):
    file, _, func = entry.path.partition("::")
    path = ROOT / file
    assert path.exists(), f"{entry.path}: no such test file or folder"
    assert entry.proves, f"{entry.path}: say what it proves"
    if func:
        assert func in _functions(path), f"{entry.path}: no such test function"
    if entry.keyword:
        text = path.read_text()  # the ids of params from tests/devices.py come from there
        text += DEVICES_SRC if "from devices import" in text else ""
        assert entry.keyword in text, f"{entry.path}: -k {entry.keyword} selects nothing"


def test_every_cuda_only_test_is_listed():
    listed = _listed()
    missing = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tests = cuda_only_tests(path)
        rel = str(path.relative_to(ROOT))
        if not tests or (rel in listed and listed[rel] is None):
            continue
        missing += [f"{rel}::{t}" for t in sorted(tests - (listed.get(rel) or set()))]
    assert not missing, f"CUDA-only tests missing from tests/gpu_tests.py (stage proof): {missing}"


def test_compiled_triton_modules_are_listed():
    listed = _listed(("proof",))
    for path in device_modules({"DEVICE", "OP_BACKENDS", "TRITON_BACKENDS"}):  # Triton's device
        rel = str(path.relative_to(ROOT))
        assert rel in listed and listed[rel] is None, f"{rel} runs compiled on CUDA: list it"


def test_the_scan_finds_the_known_cuda_tests():
    found = cuda_only_tests(ROOT / "tests" / "model" / "test_fast_ntm.py")
    assert {
        "test_cuda_graph_path_matches_eager",
        "test_training_step_matches_reference_on_cuda",
    } <= found
    assert cuda_only_tests(ROOT / "tests" / "ops" / "test_backend_ops.py")


def test_ops_sharding_matches_the_triton_tests():
    from ntm_fast.op_table import OP_NAMES

    assert set(gpu_tests.OPS) == set(OP_NAMES)
    assert gpu_tests.op_of("t.py::test_x[address-B1H1N1W1S1-torch.float64]") == "address"
    assert gpu_tests.op_of("t.py::test_x[B1-content_address]") == "content_address"
    assert gpu_tests.op_of("t.py::test_poisoning_is_on") == "misc"


def test_the_docs_name_only_stages_gpu_proof_knows():
    """`.ci/gpu_proof.sh build A|B ...` in a doc or script names stages the script runs (the
    README once named a `tests` stage that did not exist)."""
    script = (ROOT / ".ci" / "gpu_proof.sh").read_text()
    arms = re.findall(r"^    ([a-z |]+)\)", script, re.MULTILINE)  # the stage case's arms
    known = {name for arm in arms for name in arm.split(" | ")}
    assert known == {"build", *gpu_tests.STAGES, "bench"}
    paths = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), ROOT / ".ci" / "gpu_proof.sh"]
    for path in paths:
        for stages in re.findall(r"gpu_proof\.sh((?: [a-z|]+)+)", path.read_text()):
            named = {s for word in stages.split() for s in word.split("|")}
            assert named <= known, f"{path.name}: gpu_proof.sh {stages.strip()}"
