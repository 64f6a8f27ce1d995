"""Plain helpers shared by the test modules (no fixtures, no hooks: those stay in tests/conftest.py).

Importable as `helpers` because pyproject.toml's [tool.pytest.ini_options] puts tests/ on sys.path
(`pythonpath`); the modules here are not test modules, so pytest does not collect them.
"""
