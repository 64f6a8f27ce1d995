"""Issue 11 item 4: the Python version pyproject.toml claims is the one the code needs, and the README says it."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
    for folder in ("dfd", "pipeline", "train", "demodata"):
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


def test_make_test_prints_durations_and_test_fast_skips_slow():
    """Issue 11 item 10: `make test` shows the slowest tests, `make test-fast` skips the end-to-end ones."""
    text = (ROOT / "Makefile").read_text()
    rules = dict(re.findall(r"^([a-z-]+):.*\n\t(.*)$", text, re.M))
    assert "--durations=15" in rules["test"] and "not slow" not in rules["test"]
    assert '-m "not slow"' in rules["test-fast"]


def test_test_modules_share_fixtures_through_conftest_only():
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("test_"), f"{path.name} imports from {node.module}"


def test_shipped_schedule_holds_only_what_the_package_uses():
    """Issue 11 item 6: test-only helpers (fastai's one-cycle curves) live in tests/, lr_find smooths with the
    one smoother, and the run imports the resplit journal's recovery from a neutral module, not from resplit."""
    tree = ast.parse((ROOT / "train" / "fit" / "schedule.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    shipped = "".join(p.read_text() for folder in ("train", "pipeline") for p in (ROOT / folder).rglob("*.py")
                      if p.name != "schedule.py")
    unused = {name for name in defined if not re.search(rf"\b{name}\b", shipped)}
    assert unused == set(), f"train/fit/schedule.py defines what only tests use: {unused}"
    assert "1 - beta" not in (ROOT / "train" / "fit" / "lr_find.py").read_text()
    distribute = (ROOT / "pipeline" / "stages" / "frames" / "build.py").read_text()
    assert not re.findall(r"^(?:from pipeline(?:\.\w+)* import .*\bresplit\b|(?:from|import) pipeline\.resplit\b)",
                          distribute, re.M)
    assert "from pipeline.core.journal import recover" in distribute
