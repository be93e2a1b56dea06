"""Builds the plugin manager and a typed facade over one plugin's hooks."""

from __future__ import annotations

import importlib
from typing import Any

import pluggy

from . import hookspecs
from .errors import UploadError
from .hookspecs import Download, DownloadStage, Upload, UploadStage

BUILTINS = ("size_limit", "checksum", "virus_scan", "encryption")


def make_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """The built-ins, then whatever the ``aiouploader`` entry-point group installs."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTINS:
        pm.register(importlib.import_module(f"aiouploader.builtin.{name}"), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    pm.check_pending()
    return pm


def installed(pm: pluggy.PluginManager) -> list[str]:
    return sorted(name for name, plugin in pm.list_name_plugin() if plugin is not None)


class PluginHooks:
    """The hooks of the one plugin registered as ``name``, each typed."""

    def __init__(self, pm: pluggy.PluginManager, name: str) -> None:
        plugin = pm.get_plugin(name)
        if plugin is None:
            raise LookupError(name)
        self.name = name
        others = [p for p in pm.get_plugins() if p is not plugin]
        self._hooks = {
            hook: pm.subset_hook_caller(hook, remove_plugins=others)
            for hook in (
                "aiouploader_configure",
                "aiouploader_upload_started",
                "aiouploader_upload_stage",
                "aiouploader_upload_completed",
                "aiouploader_upload_failed",
                "aiouploader_download_stage",
            )
        }

    def configure(self, settings: dict[str, Any]) -> Any:
        return self._hooks["aiouploader_configure"](settings=settings)

    def upload_started(self, upload: Upload, settings: Any) -> None:
        self._hooks["aiouploader_upload_started"](upload=upload, settings=settings)

    def upload_stage(self, upload: Upload, settings: Any) -> UploadStage | None:
        stages: list[UploadStage] = self._hooks["aiouploader_upload_stage"](upload=upload, settings=settings)
        return stages[0] if stages else None

    def upload_completed(self, upload: Upload, result: dict[str, Any], settings: Any) -> None:
        self._hooks["aiouploader_upload_completed"](upload=upload, result=result, settings=settings)

    def upload_failed(self, upload: Upload, error: UploadError, settings: Any) -> None:
        self._hooks["aiouploader_upload_failed"](upload=upload, error=error, settings=settings)

    def download_stage(self, download: Download, settings: Any) -> DownloadStage | None:
        stages: list[DownloadStage] = self._hooks["aiouploader_download_stage"](download=download, settings=settings)
        return stages[0] if stages else None
