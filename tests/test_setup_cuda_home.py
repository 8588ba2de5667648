"""setup.py's choice of CUDA toolkit (``_cuda_toolkit_root``): torch guesses CUDA_HOME from the
`nvcc` on PATH, which is wrong when that nvcc is a wrapper script outside the toolkit (this
machine's /usr/local/bin/nvcc gave /usr/local, and the build stopped at a missing
cuda_runtime.h). setup.py runs setup() when imported, so the function is taken from its source.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.py"


@pytest.fixture
def toolkit_root(monkeypatch):
    tree = ast.parse(SETUP.read_text())
    wanted = {"_log", "_cuda_toolkit_root"}
    defs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in wanted]
    assert {d.name for d in defs} == wanted
    namespace = {"os": os, "Path": Path, "sys": __import__("sys")}
    exec(compile(ast.Module(defs, type_ignores=[]), str(SETUP), "exec"), namespace)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    return namespace["_cuda_toolkit_root"]


def _toolkit(root: Path, headers: bool = True) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "nvcc").write_text("#!/bin/sh\n")
    if headers:
        (root / "include").mkdir()
        (root / "include" / "cuda_runtime.h").write_text("")
    return root


def test_a_complete_guess_is_kept(toolkit_root, tmp_path):
    real = _toolkit(tmp_path / "cuda-root")
    assert toolkit_root(str(real), fallbacks=[]) == (str(real), None)


def test_a_wrapper_directory_is_replaced_by_the_first_complete_fallback(toolkit_root, tmp_path):
    wrapper = _toolkit(tmp_path / "local", headers=False)  # bin/nvcc only, like /usr/local
    partial = _toolkit(tmp_path / "cuda-12.1", headers=False)
    real = _toolkit(tmp_path / "cuda-13.0")
    root, why = toolkit_root(str(wrapper), fallbacks=[tmp_path / "missing", partial, real])
    assert (root, why) == (real, None)


def test_an_explicit_cuda_home_is_kept_as_given(toolkit_root, tmp_path, monkeypatch):
    wrapper = _toolkit(tmp_path / "local", headers=False)
    monkeypatch.setenv("CUDA_HOME", str(wrapper))
    real = _toolkit(tmp_path / "cuda-root")
    assert toolkit_root(str(wrapper), fallbacks=[real]) == (str(wrapper), None)


def test_no_toolkit_says_what_was_looked_at(toolkit_root, tmp_path):
    wrapper = _toolkit(tmp_path / "local", headers=False)
    root, why = toolkit_root(str(wrapper), fallbacks=[tmp_path / "cuda-root"])
    assert root is None
    assert f"{wrapper}/include" in why and str(tmp_path / "cuda-root") in why and "CUDA_HOME" in why
    root, why = toolkit_root(None)
    assert root is None and "nvcc was not found" in why
