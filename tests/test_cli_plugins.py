"""``aiouploader plugins``: every installed plugin with its distribution's version and its hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiouploader.cli import main

TEAM_PLUGIN = """
from aiouploader import hookimpl


@hookimpl
def aiouploader_configure(settings):
    return settings


@hookimpl
def aiouploader_upload_completed(upload, result, settings):
    pass
"""


def install_team_plugin(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution ``team-plugin 1.2.3`` whose entry point ``team`` in group ``aiouploader`` is a module."""
    (root / "team_plugin_for_cli_test.py").write_text(TEAM_PLUGIN)
    dist = root / "team_plugin-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: team-plugin\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[aiouploader]\nteam = team_plugin_for_cli_test\n")
    monkeypatch.syspath_prepend(str(root))


def test_plugins_lists_name_version_and_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_team_plugin(tmp_path, monkeypatch)
    assert main(["plugins"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["team"] == "team  (team-plugin 1.2.3)  hooks: configure, upload_completed"
    assert lines["encryption"] == "encryption  (built-in)  hooks: configure, download_stage, upload_stage"
    assert {"size_limit", "checksum", "virus_scan"} <= lines.keys()


def install_plugin(root: Path, name: str, module: str, source: str) -> None:
    """A distribution ``NAME-plugin 1.0`` under ``root`` whose entry point ``NAME`` is the module ``MODULE``."""
    (root / f"{module}.py").write_text(source)
    dist = root / f"{name}_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[aiouploader]\n{name} = {module}\n")


ROUTE = '[[routes]]\npath = "/uploads"\nbucket = "incoming"\nplugins = ["checksum"]\n'


def assert_one_line(stderr: str, *named: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aiouploader: "), stderr
    for text in named:
        assert text in lines[0]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("import no_such_module_for_cli_test\n", "ModuleNotFoundError: No module named 'no_such_module_for_cli_test'"),
        ("raise RuntimeError('no licence\\nfound')\n", "RuntimeError: no licence found"),
    ],
    ids=["import-error", "exception"],
)
@pytest.mark.parametrize("command", ["plugins", "check-config"])
def test_a_plugin_that_fails_to_load_is_one_line_naming_its_entry_point(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: str,
    error: str,
    command: str,
) -> None:
    module = f"broken_plugin_{tmp_path.name.replace('-', '_')}"
    install_plugin(tmp_path, "broken", module, source)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "c.toml"
    config.write_text(ROUTE)
    assert main([command] if command == "plugins" else [command, str(config)]) == 2
    assert_one_line(capsys.readouterr().err, f"plugin entry point broken = {module} (broken-plugin 1.0)", error)


def test_serve_with_a_plugin_that_fails_to_load_is_one_line(tmp_path: Path) -> None:
    install_plugin(tmp_path, "broken", "broken_plugin_for_serve", "import no_such_module_for_cli_test\n")
    config = tmp_path / "c.toml"
    config.write_text(ROUTE)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "serve", "--config", str(config)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 2
    assert_one_line(run.stderr, "plugin entry point broken = broken_plugin_for_serve", "ModuleNotFoundError")


def test_a_plugin_with_the_name_of_a_built_in_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_plugin(tmp_path, "size_limit", "impostor_for_cli_test", TEAM_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["plugins"]) == 2
    assert_one_line(capsys.readouterr().err, "size_limit = impostor_for_cli_test", "name of a built-in plugin")


def test_a_plugin_with_an_unknown_hook_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    misspelt = TEAM_PLUGIN.replace("aiouploader_upload_completed", "aiouploader_upload_complete")
    install_plugin(tmp_path, "typo", "typo_plugin_for_cli_test", misspelt)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["plugins"]) == 2
    assert_one_line(capsys.readouterr().err, "plugin typo", "aiouploader_upload_complete")
