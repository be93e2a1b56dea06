"""Builds the plugin manager and a typed facade over one plugin's hooks."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Awaitable
from typing import Any

import pluggy

from . import hookspecs
from .config import Config, ConfigError, did_you_mean
from .errors import UploadError
from .hookspecs import Download, DownloadStage, Upload, UploadResult, UploadStage

BUILTINS = ("size_limit", "checksum", "virus_scan", "encryption")


class PluginLoadError(ConfigError):
    """An installed plugin that cannot be used; the message names its entry point and what is wrong."""


def make_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """The built-ins, then whatever the ``aiouploader`` entry-point group installs."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTINS:
        pm.register(importlib.import_module(f"aiouploader.builtin.{name}"), name=name)
    if entry_points:
        _load_entry_points(pm)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"plugin {pm.get_name(exc.plugin)}: {' '.join(str(exc).split())}") from None
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    """pluggy's ``load_setuptools_entrypoints``, one entry point at a time: one that fails to load,
    or whose name is taken (by a built-in or another distribution), is an error naming it, where
    pluggy would raise a traceback or skip it without a word."""
    loaded: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for entry_point in dist.entry_points.select(group=hookspecs.PROJECT):
            name = entry_point.name
            where = f"plugin entry point {name} = {entry_point.value} ({dist.name} {dist.version})"
            if loaded.get(name) == entry_point.value:
                continue  # the same distribution, found twice on sys.path
            if name in loaded:
                raise PluginLoadError(f"{where}: {name} = {loaded[name]} takes that name too; uninstall one of them")
            if pm.has_plugin(name):
                raise PluginLoadError(f"{where}: {name} is the name of a built-in plugin; the plugin must take another")
            try:
                pm.load_setuptools_entrypoints(hookspecs.PROJECT, name=name)
            except Exception as exc:
                raise PluginLoadError(f"{where}: cannot load it ({_one_line(exc)})") from None
            loaded[name] = entry_point.value


def _one_line(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def installed(pm: pluggy.PluginManager) -> list[str]:
    return sorted(name for name, plugin in pm.list_name_plugin() if plugin is not None)


def check_plugin_tables(pm: pluggy.PluginManager, config: Config) -> None:
    """Refuse a ``[plugins.NAME]`` table for a plugin that is not installed: a misspelt name would be ignored.

    A table for an installed plugin that no route lists is fine.
    """
    names = installed(pm)
    for name in config.plugins:
        if pm.get_plugin(name) is None:
            raise ConfigError(
                f"plugins.{name}: [plugins.{name}] is for a plugin that is not installed; "
                f"installed: {', '.join(names)}{did_you_mean(name, names)}"
            )


def _check_awaitable_where_awaited(pm: pluggy.PluginManager, name: str) -> None:
    """Refuse an ``async def`` for a hook the server calls without awaiting: its body would never run, so that a
    veto in ``aiouploader_upload_started``, say, would let every upload through."""
    plugin = pm.get_plugin(name)
    for hook in pm.get_hookcallers(plugin) or []:
        if inspect.iscoroutinefunction(getattr(hookspecs, hook.name, None)):
            continue
        for impl in hook.get_hookimpls():
            if impl.plugin is plugin and (
                inspect.iscoroutinefunction(impl.function) or inspect.isasyncgenfunction(impl.function)
            ):
                raise PluginLoadError(
                    f"plugin {name}: {hook.name} is an async def, but the server calls it without awaiting it, "
                    "so that its body would never run; make it a plain def"
                )


class PluginHooks:
    """The hooks of the one plugin registered as ``name``, each typed."""

    def __init__(self, pm: pluggy.PluginManager, name: str) -> None:
        plugin = pm.get_plugin(name)
        if plugin is None:
            raise LookupError(name)
        self.name = name
        others = [p for p in pm.get_plugins() if p is not plugin]
        _check_awaitable_where_awaited(pm, name)
        self._hooks = {
            hook: pm.subset_hook_caller(hook, remove_plugins=others)
            for hook in (
                "aiouploader_configure",
                "aiouploader_startup",
                "aiouploader_shutdown",
                "aiouploader_upload_limit",
                "aiouploader_upload_started",
                "aiouploader_upload_stage",
                "aiouploader_upload_completed",
                "aiouploader_upload_failed",
                "aiouploader_download_stage",
            )
        }

    def configure(self, settings: dict[str, Any]) -> Any:
        return self._hooks["aiouploader_configure"](settings=settings)

    def startup(self, settings: dict[str, Any]) -> Awaitable[None] | None:
        """The plugin's ``aiouploader_startup`` coroutine, to await; ``None`` when it has none."""
        started: list[Awaitable[None]] = self._hooks["aiouploader_startup"](settings=settings, name=self.name)
        return started[0] if started else None

    def shutdown(self, settings: dict[str, Any], grace: float) -> Awaitable[None] | None:
        stopped: list[Awaitable[None]] = self._hooks["aiouploader_shutdown"](
            settings=settings, name=self.name, grace=grace
        )
        return stopped[0] if stopped else None

    def upload_limit(self, settings: Any) -> int | None:
        limits: list[int] = self._hooks["aiouploader_upload_limit"](settings=settings, name=self.name)
        return limits[0] if limits else None

    def upload_started(self, upload: Upload, settings: Any) -> None:
        self._hooks["aiouploader_upload_started"](upload=upload, settings=settings, name=self.name)

    def upload_stage(self, upload: Upload, settings: Any) -> UploadStage | None:
        stages: list[UploadStage] = self._hooks["aiouploader_upload_stage"](
            upload=upload, settings=settings, name=self.name
        )
        return stages[0] if stages else None

    def upload_completed(self, upload: Upload, result: UploadResult, settings: Any) -> None:
        self._hooks["aiouploader_upload_completed"](upload=upload, result=result, settings=settings, name=self.name)

    def upload_failed(self, upload: Upload, error: UploadError, settings: Any) -> None:
        self._hooks["aiouploader_upload_failed"](upload=upload, error=error, settings=settings, name=self.name)

    def download_stage(self, download: Download, settings: Any) -> DownloadStage | None:
        stages: list[DownloadStage] = self._hooks["aiouploader_download_stage"](
            download=download, settings=settings, name=self.name
        )
        return stages[0] if stages else None
