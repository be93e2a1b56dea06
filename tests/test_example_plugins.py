"""The example plugins are distributions of their own: a copy of one lints and type-checks strictly, alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(path for path in (ROOT / "plugins").iterdir() if (path / "pyproject.toml").exists())
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_a_copied_example_plugin_passes_ruff_and_strict_mypy_with_its_own_settings(
    example: Path, tmp_path: Path
) -> None:
    copy = tmp_path / example.name
    shutil.copytree(example, copy, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", ".*_cache"))
    tool = tomllib.loads((copy / "pyproject.toml").read_text())["tool"]
    assert tool["mypy"]["strict"] is True and "pydantic.mypy" in tool["mypy"]["plugins"]
    assert {"E", "F", "I", "B", "UP", "ASYNC"} <= set(tool["ruff"]["lint"]["select"])
    for command in (["ruff", "check", "--no-cache", "."], ["ruff", "format", "--check", "--no-cache", "."]):
        run = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=copy, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
    run = subprocess.run(
        [str(BIN / "mypy"), "--cache-dir", str(tmp_path / "mypy-cache")], cwd=copy, capture_output=True, text=True
    )
    assert run.returncode == 0 and "Success: no issues found in" in run.stdout, run.stdout + run.stderr
