"""Every link in the project's Markdown files, and every page under ``docs`` (with its anchor)
a source file names, points at a tracked file and, where it names one, at a heading of it
(GitHub's anchor of the heading): a renamed heading or a moved page breaks a test, not a
reader's link."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
_SOURCE_REF = re.compile(r"\b((?:docs|csrc|kernels|bench)/[\w./-]+\.md)(?:#([\w-]+))?")


def _tracked(*patterns: str) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"needs a git checkout to list the tracked files ({exc})")
    return [ROOT / name for name in out.split()]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, backticks and every character but
    letters, digits, spaces, hyphens and underscores dropped, spaces made hyphens."""
    text = heading.strip().lower().replace("`", "")
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors of ``page``'s headings (outside code blocks); a repeated heading's later
    copies get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    for line in _FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            slug = github_anchor(match.group(1))
            seen[slug] = seen.get(slug, 0) + 1
            if seen[slug] > 1:
                seen[f"{slug}-{seen[slug] - 1}"] = 1
    return frozenset(seen)


def _problem(target: Path, anchor: str) -> str | None:
    if not target.exists():
        return "no such file"
    if anchor and target.suffix == ".md" and anchor not in anchors(target):
        return f"no heading with anchor #{anchor}"
    return None


def test_github_anchor_examples():
    assert github_anchor("Longer sequences: the count runs out a repeat early (session 23)") == (
        "longer-sequences-the-count-runs-out-a-repeat-early-session-23"
    )
    assert github_anchor("Repeat copy (section 4.2) — 20 × 10") == "repeat-copy-section-42--20--10"
    assert github_anchor("`--resume` and phases") == "--resume-and-phases"
    page = ROOT / "docs" / "math.md"
    assert "scale-safe-norms" in anchors(page) and "no-such-heading" not in anchors(page)


def test_markdown_links_resolve():
    broken = []
    for page in _tracked("*.md"):
        for match in _LINK.finditer(_FENCE.sub("", page.read_text(encoding="utf-8"))):
            link = match.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
                continue
            path, _, anchor = link.partition("#")
            problem = _problem((page.parent / path).resolve() if path else page, anchor)
            if problem:
                broken.append(f"{page.relative_to(ROOT)}: ({link}): {problem}")
    assert not broken, "\n".join(broken)


def test_source_references_to_docs_resolve():
    broken = []
    for source in _tracked("*.py", "*.h", "*.cpp", "*.cu", "*.sh", "*.toml"):
        for match in _SOURCE_REF.finditer(source.read_text(encoding="utf-8")):
            path, anchor = match.group(1), match.group(2) or ""
            problem = _problem(ROOT / path, anchor)
            if problem:
                broken.append(f"{source.relative_to(ROOT)}: {match.group(0)}: {problem}")
    assert not broken, "\n".join(broken)
