"""What an installed (not editable) package holds: every file the code reads beside its modules ships with it."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_data_file_under_bot_is_declared_as_package_data():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"].get("package-data", {})
    data = [path for path in (ROOT / "bot").rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts]
    assert data, "the call graph's query files at least"
    missing = []
    for path in data:
        shipped = False
        for package, patterns in declared.items():
            folder = ROOT / package.replace(".", "/")
            if folder in path.parents:
                relative = path.relative_to(folder).as_posix()
                shipped = shipped or any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)
        if not shipped:
            missing.append(path.relative_to(ROOT).as_posix())
    assert not missing, f"not in [tool.setuptools.package-data]: {missing} (a `pip install .` image would lack them)"
