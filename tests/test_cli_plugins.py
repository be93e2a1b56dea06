"""``aiouploader plugins``: every installed plugin with its distribution's version and its hooks."""

from __future__ import annotations

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
