"""What a first-time user reads and runs (issue 16): every Python block of the README runs as
written, public ops document their arguments, ``eval --help`` describes its options, and
pytest prints its summary line with ``-q``."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ntm_fast import ops
from ntm_fast.train.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs_as_written(index, capsys):
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})


@pytest.mark.parametrize("name", ops.__all__)
def test_public_ops_document_every_argument_with_its_shape(name):
    fn = getattr(ops, name)
    doc = inspect.getdoc(fn)
    assert "See :func:" not in doc
    assert "Args:" in doc and "Returns:" in doc
    args = doc.split("Args:")[1].split("Returns:")[0]
    for param in inspect.signature(fn).parameters:
        assert re.search(rf"^\s*{param}:", args, flags=re.M), f"{name}: {param} undocumented"
    returns = doc.split("Returns:")[1]
    assert re.search(r"`\([BHNWS, ]+\)`", returns), f"{name}: no output shape"


def _subparser(name: str):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


@pytest.mark.parametrize("command", ["train", "eval", "plot"])
def test_every_option_has_help(command):
    sub = _subparser(command)
    undocumented = [a.option_strings or a.dest for a in sub._actions
                    if a.help is None and a.dest != "help"]  # fmt: skip
    assert undocumented == []
    if command == "eval":
        text = sub.format_help()
        for words in ("batches per setting", "sequences per batch", "default: 1234", "JSON"):
            assert words in text


def test_pytest_quiet_prints_its_summary_line(tmp_path):
    """``pytest -q`` (as CI runs ``pytest bench/ --benchmark-disable -q``) must print the
    "N passed" line: the configured addopts must not add a second -q."""
    test = tmp_path / "test_one.py"
    test.write_text("def test_one():\n    pass\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
         "-c", str(ROOT / "pyproject.toml"), str(test)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^1 passed", proc.stdout, flags=re.M), proc.stdout
