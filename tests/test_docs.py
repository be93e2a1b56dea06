"""The hook surface is documented and tested: a new hook fails here until it is both."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from aiouploader import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, spec in vars(hookspecs).items() if hasattr(spec, f"{hookspecs.PROJECT}_spec"))
NOT_TESTS = {"plugins_for_tests.py", Path(__file__).name}


def hook_reference() -> str:
    text = (ROOT / "docs" / "plugins.md").read_text()
    _, found, reference = text.partition("\n## Hook reference\n")
    assert found, "docs/plugins.md has no '## Hook reference' section"
    return reference.split("\n## ", 1)[0]


def test_the_hooks_are_found() -> None:
    assert "aiouploader_upload_stage" in HOOKS and len(HOOKS) >= 6


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_hook_reference_with_its_parameters(hook: str) -> None:
    parameters = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"\n### `{hook}({parameters})" in hook_reference()


def test_the_hook_reference_names_only_hooks_that_exist() -> None:
    assert sorted(re.findall(r"^### `(\w+)\(", hook_reference(), re.M)) == HOOKS


def test_the_plugin_docs_say_where_what_they_use_is_imported_from() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text()
    shown = {
        name.strip(): module
        for module, names in re.findall(r"^from (aiouploader[\w.]*) import (.+)$", text, re.M)
        for name in names.split(",")
    }
    for name, module in shown.items():
        assert hasattr(importlib.import_module(module), name), f"docs/plugins.md: from {module} import {name}"
    used = {"hookimpl", "Upload", "UploadStage", "Settings", "parse_settings", "make_plugin_manager"}
    assert used <= shown.keys()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    files = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "plugins").glob("*/tests/**/*.py")]
    testing = [path.relative_to(ROOT) for path in files if path.name not in NOT_TESTS and hook in path.read_text()]
    assert testing, f"no test file outside plugins_for_tests.py calls {hook} by name"
