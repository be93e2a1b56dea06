"""The core knows no plugin by name: built-ins use the same door as any other plugin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiouploader import Upload, UploadStage, hookimpl
from aiouploader.chain import order_warnings
from aiouploader.config import RouteConfig
from aiouploader.plugin_manager import make_plugin_manager

PACKAGE = Path(__file__).parent.parent / "aiouploader"


def _imported(path: Path) -> list[str]:
    """The modules ``path`` imports, as absolute names."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level])
            base = f"{package}.{node.module}" if node.level and node.module else node.module or package
            modules += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return modules


def test_no_core_module_imports_a_built_in_plugin() -> None:
    core = [path for path in PACKAGE.rglob("*.py") if "builtin" not in path.relative_to(PACKAGE).parts]
    assert len(core) > 20
    offenders = {
        str(path.relative_to(PACKAGE)): [name for name in _imported(path) if name.startswith("aiouploader.builtin")]
        for path in core
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("module", ["aiouploader.chain", "aiouploader.session", "aiouploader.digests"])
def test_the_chain_and_the_session_load_without_any_built_in_plugin(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('aiouploader.builtin')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


class _Scrambles:
    transforms = True

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return UploadStage()


class _Inspects:
    needs_plaintext = True

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return UploadStage()


def _route(*plugins: str) -> RouteConfig:
    return RouteConfig(path="/u", bucket="bucket", plugins=list(plugins))


def test_a_plugin_that_needs_the_clients_bytes_after_one_that_transforms_them_is_warned_about() -> None:
    pm = make_plugin_manager(entry_points=False)
    pm.register(_Scrambles(), name="scrambler")
    pm.register(_Inspects(), name="inspector")
    assert order_warnings(pm, _route("inspector", "scrambler")) == []
    assert order_warnings(pm, _route("scrambler", "inspector")) == [
        "route /u: inspector runs after scrambler, which transforms the bytes, and sees only its output; "
        "put it before scrambler"
    ]


def test_the_built_ins_declare_what_they_need_and_what_they_do() -> None:
    pm = make_plugin_manager(entry_points=False)
    warned = order_warnings(pm, _route("encryption", "checksum", "size_limit", "virus_scan"))
    assert [warning.split(" runs after")[0] for warning in warned] == ["route /u: checksum", "route /u: virus_scan"]
    assert order_warnings(pm, _route("checksum", "virus_scan", "encryption")) == []
