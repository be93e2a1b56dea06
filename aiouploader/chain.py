"""A route's ordered plugin chain: lifecycle hooks, and the stages the bytes flow through."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pluggy

from .config import Config, ConfigError, RouteConfig
from .errors import PluginError, UploadError
from .hookspecs import Download, DownloadStage, Fetch, Upload, UploadStage
from .plugin_manager import PluginHooks, installed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoundPlugin:
    """A plugin with its settings for one route."""

    hooks: PluginHooks
    settings: Any

    @property
    def name(self) -> str:
        return self.hooks.name


@contextmanager
def _blame(name: str) -> Iterator[None]:
    """Let a plugin's :class:`UploadError` through; turn anything else into ``plugin_error``."""
    try:
        yield
    except UploadError:
        raise
    except Exception as exc:
        log.exception("plugin %s failed", name)
        raise PluginError(name) from exc


class Chain:
    def __init__(self, plugins: list[BoundPlugin]) -> None:
        self.plugins = plugins

    @classmethod
    def for_route(cls, pm: pluggy.PluginManager, config: Config, route: RouteConfig) -> Chain:
        hooks: dict[str, PluginHooks] = {}
        plugins = []
        for name in route.plugins:
            if pm.get_plugin(name) is None:
                raise ConfigError(
                    f"routes {route.path}: unknown plugin {name!r}; installed: {', '.join(installed(pm))}"
                )
            hooks.setdefault(name, PluginHooks(pm, name))
            try:
                settings = hooks[name].configure(config.plugin_settings(route, name))
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"plugins.{name} (route {route.path}): {exc}") from None
            plugins.append(BoundPlugin(hooks[name], settings))
        return cls(plugins)

    def started(self, upload: Upload) -> None:
        """Run ``upload_started`` in order: before any body byte is read."""
        for plugin in self.plugins:
            with _blame(plugin.name):
                plugin.hooks.upload_started(upload, plugin.settings)

    def pipeline(self, upload: Upload) -> Pipeline:
        stages = []
        for plugin in self.plugins:
            with _blame(plugin.name):
                stage = plugin.hooks.upload_stage(upload, plugin.settings)
            if stage is not None:
                stages.append((plugin.name, stage))
        return Pipeline(stages)

    def completed(self, upload: Upload, result: dict[str, Any]) -> None:
        for plugin in self.plugins:
            try:
                plugin.hooks.upload_completed(upload, result, plugin.settings)
            except Exception:
                log.exception("plugin %s failed in upload_completed", plugin.name)

    def failed(self, upload: Upload, error: UploadError) -> None:
        for plugin in self.plugins:
            try:
                plugin.hooks.upload_failed(upload, error, plugin.settings)
            except Exception:
                log.exception("plugin %s failed in upload_failed", plugin.name)

    async def open_download(self, download: Download, fetch: Fetch, size: int) -> tuple[Fetch, int]:
        """Stack the download stages over ``fetch``; return the outermost reader and its size."""
        for plugin in reversed(self.plugins):
            with _blame(plugin.name):
                stage: DownloadStage | None = plugin.hooks.download_stage(download, plugin.settings)
                if stage is not None:
                    size = await stage.open(fetch, size)
                    fetch = stage.read
        return fetch, size


class Pipeline:
    """The stages of one upload, fed in chain order."""

    def __init__(self, stages: list[tuple[str, UploadStage]]) -> None:
        self._stages = stages

    async def feed(self, block: bytes, first: int = 0) -> bytes:
        for name, stage in self._stages[first:]:
            if not block:
                break
            with _blame(name):
                block = await stage.feed(block)
        return block

    async def finish(self) -> bytes:
        """Finish each stage in order, passing its trailing bytes through the stages after it."""
        tail = bytearray()
        for i, (name, stage) in enumerate(self._stages):
            with _blame(name):
                trailing = await stage.finish()
            if trailing:
                tail += await self.feed(trailing, i + 1)
        return bytes(tail)

    async def close(self) -> None:
        for name, stage in self._stages:
            try:
                await stage.close()
            except Exception:
                log.exception("plugin %s failed to close its stage", name)
