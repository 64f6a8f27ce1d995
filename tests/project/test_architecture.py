"""The house rules of docs/architecture.md that a parser can check: functions fit on a screen, and only the read
side (pipeline/dataset.py) opens dataset.json or the manifest tables for reading."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dfd", "pipeline", "train", "demodata")
MAX_FUNCTION_LINES = 80
READ_SIDE = ROOT / "pipeline" / "dataset.py"


def shipped_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in shipped_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


# Reading a final table (MANIFESTS/frames.parquet, not a writer's fragment such as parts/{stem}.frames.parquet) or
# dataset.json: pandas/pyarrow on a path named after one, or dataset.json's text.
TABLE_READ = re.compile(r"(read_parquet|read_table|ParquetFile)\([^)]*[\"'](videos|frames|faces)\.parquet")
JSON_READ = re.compile(r"dataset\.json[\"']?\)?\.read_(text|bytes)|open\([^)]*dataset\.json")


def test_only_the_read_side_reads_the_manifest():
    offenders = []
    for path in shipped_modules():
        if path == READ_SIDE:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TABLE_READ.search(line) or JSON_READ.search(line) or "read_member(" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "read through pipeline.dataset instead:\n" + "\n".join(offenders)


def test_the_rule_checks_catch_what_they_are_for(tmp_path):
    """The patterns above match the reads they forbid (so the test above can fail)."""
    assert TABLE_READ.search('pd.read_parquet(manifests / "frames.parquet", columns=["key"])')
    assert JSON_READ.search('json.loads((manifests / "dataset.json").read_text())')
    assert not TABLE_READ.search('pq.read_table(folder / f"{stem}.frames.parquet")')  # a writer's own fragment
    body = "def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES + 1)
    node = ast.parse(body).body[0]
    assert node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES


def test_import_layers_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install '.[dev]')")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_one_file_name_one_job_in_the_trainer():
    """No two modules of train/ share a file name (the house issue: commands keep theirs, inner modules say their job)."""
    names: dict[str, list[str]] = {}
    for path in sorted((ROOT / "train").rglob("*.py")):
        if path.name not in ("__init__.py", "__main__.py"):
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}


def test_pages_come_from_templates_with_one_stylesheet():
    """No trainer module writes a page in an f-string or carries its own CSS: train/templates does, page.css once."""
    inline = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "train").rglob("*.py"))
              if re.search(r"<style|<!doctype", p.read_text(), re.IGNORECASE)]
    assert inline == []
    assert [p.name for p in (ROOT / "train" / "templates").glob("*.css")] == ["page.css"]
    styled = [p.name for p in sorted((ROOT / "train" / "templates").glob("*.j2")) if "<style" in p.read_text()]
    assert styled == ["base.html.j2"]  # every page extends it
