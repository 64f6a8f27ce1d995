"""Issue 11 item 4: the Python version pyproject.toml claims is the one the code needs, and the README says it."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEWER_STDLIB = {"tomllib": (3, 11)}  # stdlib modules the shipped code may import, and the Python that added them


def _min_python() -> tuple[int, int]:
    text = (ROOT / "pyproject.toml").read_text()
    major, minor = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', text).groups()
    return int(major), int(minor)


def _unguarded_imports(path: Path) -> set[str]:
    """Top-level module names imported outside a try/except ImportError."""
    tree = ast.parse(path.read_text())
    guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_requires_python_covers_the_stdlib_the_code_imports():
    need = _min_python()
    for folder in ("pipeline", "train", "demodata"):
        for path in (ROOT / folder).rglob("*.py"):
            for module in _unguarded_imports(path) & set(NEWER_STDLIB):
                assert need >= NEWER_STDLIB[module], f"{path.relative_to(ROOT)} imports {module} (Python " \
                    f"{'.'.join(map(str, NEWER_STDLIB[module]))}+) but pyproject says >={need[0]}.{need[1]}"
    assert sys.version_info[:2] >= need


def test_readme_states_the_same_version():
    major, minor = _min_python()
    readme = (ROOT / "README.md").read_text()
    stated = set(re.findall(r"Python (\d+\.\d+)\+", readme))
    assert stated == {f"{major}.{minor}"}, stated
