"""The package's layering (issue 14): the core library (ops, modules, backends) imports nothing
from the training application ``ntm_fast.train`` and runs without the application's extras;
no import cycle among the package's modules; checkpoints written before the split still load.
"""

from __future__ import annotations

import ast
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = "ntm_fast.train"
#: a training checkpoint written by ntm_fast before the application moved to ntm_fast.train
#: (a 2-step tiny copy run: memory 4 x 3, LSTM controller of 4 units, 2-bit vectors)
LEGACY = Path(__file__).parent / "data" / "checkpoint-v2-before-appsplit.pt.gz"

_CORE_ONLY = r"""
import json, sys

# As if not installed: importing them raises ImportError, and importlib.util.find_spec (with
# which torch probes optional packages) answers None.
for name in ("tqdm", "matplotlib"):
    sys.modules[name] = None
import torch
import ntm_fast, ntm_fast.ops, ntm_fast.reference, ntm_fast.resources
from ntm_fast import FastNTM, ReferenceNTM

model = FastNTM(input_size=3, output_size=2, memory_slots=4, memory_width=3,
                controller_size=4, backend="reference")
model(torch.zeros(2, 1, 3))[0].sum().backward()
ReferenceNTM(input_size=3, output_size=2, memory_slots=4, memory_width=3)
loaded = sorted(m for m, mod in sys.modules.items()
                if mod is not None and m.split(".")[0] in ("ntm_fast", "tqdm", "matplotlib"))
try:
    import ntm_fast.train
    app_error = None
except ImportError as exc:
    app_error = str(exc)
print(json.dumps({"loaded": loaded, "app_error": app_error}))
"""


def test_core_imports_and_runs_without_the_application_or_its_extras():
    proc = subprocess.run([sys.executable, "-c", _CORE_ONLY], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "ntm_fast.ops" in result["loaded"] and "ntm_fast.fast" in result["loaded"]
    app = [m for m in result["loaded"] if m == APP or m.startswith(APP + ".")]
    assert app == [], f"the core imported the application: {app}"
    assert not [m for m in result["loaded"] if not m.startswith("ntm_fast")]
    # the application itself says what is missing and how to install it
    assert "ntm_fast[train]" in result["app_error"] and "matplotlib" in result["app_error"]


def _modules() -> dict[str, Path]:
    """Every module of the installed layout: ntm_fast/** and kernels/ (as ntm_fast._kernels)."""
    found = {}
    for pkg, base in (("ntm_fast", ROOT / "ntm_fast"), ("ntm_fast._kernels", ROOT / "kernels")):
        for path in base.rglob("*.py"):
            parts = [pkg, *path.relative_to(base).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports anywhere (functions included, so an import moved
    into a function cannot hide a cycle; ``if TYPE_CHECKING:`` blocks excluded)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text())]
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import sub` imports the submodule; `from pkg import name`, pkg itself
            targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names)  # fmt: skip
    return {t for t in targets if t in modules and t != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules | {"ntm_fast._C": path})
             for name, path in modules.items()}  # fmt: skip
    return {**graph, "ntm_fast._C": set()}  # the extension setup.py builds from csrc/


def test_no_import_cycle_among_the_package_modules():
    graph = _graph()
    assert "ntm_fast.train.trainer" in graph and "ntm_fast.train.loop" in graph
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_core_never_imports_the_application():
    graph = _graph()
    core = [n for n in graph if not (n == APP or n.startswith(APP + "."))]
    assert "ntm_fast.resources" in core and "ntm_fast.fast" in core
    bad = {n: sorted(d for d in graph[n] if d == APP or d.startswith(APP + ".")) for n in core}
    assert {n: d for n, d in bad.items() if d} == {}


@pytest.fixture
def legacy_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(gzip.decompress(LEGACY.read_bytes()))
    return run


def test_a_checkpoint_written_before_the_split_loads_evaluates_and_resumes(legacy_run, capsys):
    from ntm_fast import FastNTM
    from ntm_fast.train import checkpoint as ckpt
    from ntm_fast.train.cli import main
    from ntm_fast.train.evaluate import evaluate

    state = ckpt.load_for_resume(legacy_run, "copy", "lstm")
    assert state["format"] == ckpt.FORMAT and state["step"] == 2
    _, model = ckpt.load_model(legacy_run, backend="reference")
    assert isinstance(model, FastNTM) and model.memory_slots == 4
    result = evaluate(legacy_run, batches=1, batch_size=2, backend="reference", write=False)
    assert result["step"] == 2
    rc = main(["train", "copy", "--resume", "--out", str(legacy_run), "--steps", "3",
               "--no-progress", "--no-plots"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert ckpt.load_checkpoint(legacy_run)["step"] == 3


def test_resolve_name_is_marked_constant_as_torch_marks_it():
    """backends.resolve_name carries what torch.compiler.assume_constant_result sets (set
    directly so that importing ntm_fast does not import torch._dynamo); if torch changes how
    it marks a function, this fails."""
    import torch

    from ntm_fast import backends

    def probe() -> None: ...

    before = set(vars(probe))
    torch.compiler.assume_constant_result(probe)
    marks = set(vars(probe)) - before
    assert marks, "assume_constant_result set no attribute: update backends.resolve_name"
    for name in marks:
        assert getattr(backends.resolve_name, name, None) == getattr(probe, name)


def test_importing_the_package_and_its_cli_does_not_import_the_compiler():
    """torch._dynamo costs ~1.7 s of every `ntm-fast` start-up; nothing needs it until a
    torch.compile call."""
    code = "import sys, ntm_fast.train.cli; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
