"""A route's ordered plugin chain: lifecycle hooks, and the stages the bytes flow through."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pluggy

from . import chain_state
from .chain_state import StateKey
from .config import Config, ConfigError, RouteConfig, did_you_mean
from .digests import DigestStage, expected_digests, lowercased
from .errors import CannotResume, PluginError, UploadError
from .hookspecs import Download, DownloadStage, Fetch, Upload, UploadResult, UploadStage
from .plugin_calls import (
    DOWNLOAD_STAGE_CALLS,
    UPLOAD_STAGE_CALLS,
    blame,
    checked_stage,
    guarded,
    holding,
    output,
    sliced,
    within,
)
from .plugin_manager import PluginHooks, installed
from .tags import TagWatch

log = logging.getLogger(__name__)

StageObserver = Callable[[str, float], None]
"""Called with a plugin's name and the seconds one ``feed`` or ``finish`` of its stage took."""

DIGESTS = "digests"
"""The name of the core step that checks the client's digests, in logs and metrics."""


@dataclass(frozen=True)
class BoundPlugin:
    """A plugin with its settings for one route."""

    hooks: PluginHooks
    settings: Any

    @property
    def name(self) -> str:
        return self.hooks.name


def _upload_limit(plugin: BoundPlugin, route: RouteConfig) -> int | None:
    where = f"plugins.{plugin.name} (route {route.path}): aiouploader_upload_limit"
    try:
        limit = plugin.hooks.upload_limit(plugin.settings)
    except Exception as exc:
        raise ConfigError(f"{where} failed: {exc}") from None
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ConfigError(f"{where} returned {limit!r}, not a number of bytes")
    return limit


def declares(plugin: object, what: str) -> bool:
    """Whether a plugin declares ``what`` about its stage: ``transforms`` (it changes the bytes) or
    ``needs_plaintext`` (it must see them as the client sent them)."""
    return getattr(plugin, what, False) is True


def order_warnings(pm: pluggy.PluginManager, route: RouteConfig) -> list[str]:
    """A plugin that needs the client's bytes but comes after one that transforms them sees only its output."""
    warnings = []
    for i, name in enumerate(route.plugins):
        if not declares(pm.get_plugin(name), "transforms"):
            continue
        warnings += [
            f"route {route.path}: {later} runs after {name}, which transforms the bytes, and sees only its "
            f"output; put it before {name}"
            for later in route.plugins[i + 1 :]
            if declares(pm.get_plugin(later), "needs_plaintext")
        ]
    return warnings


class Chain:
    def __init__(
        self,
        plugins: list[BoundPlugin],
        timeout: float = 30.0,
        state_key: StateKey | None = None,
        upload_limit: int | None = None,
    ) -> None:
        self.plugins = plugins
        self.upload_limit = upload_limit
        """The smallest of the plugins' ``upload_limit``s: the largest upload the route takes, ``None`` for any."""
        self.timeout = timeout
        """Seconds one stage call (``feed``, ``finish``, download ``open``) may take: ``plugin_timeout``."""
        self.observe: StageObserver | None = None
        self.state_key = state_key
        """Seals what :meth:`Pipeline.save` returns and opens what :meth:`restore` takes: ``server.state_key``."""

    @classmethod
    def for_route(cls, pm: pluggy.PluginManager, config: Config, route: RouteConfig) -> Chain:
        hooks: dict[str, PluginHooks] = {}
        plugins = []
        for name in route.plugins:
            if pm.get_plugin(name) is None:
                names = installed(pm)
                raise ConfigError(
                    f"routes {route.path}: unknown plugin {name!r}; installed: {', '.join(names)}"
                    f"{did_you_mean(name, names)}"
                )
            if route.direct_upload and any(
                caller.name == "aiouploader_upload_stage" for caller in pm.get_hookcallers(pm.get_plugin(name)) or []
            ):
                raise ConfigError(
                    f"routes {route.path}: direct_upload sends bytes straight to S3, "
                    f"but the plugin {name!r} must see them; remove one or the other"
                )
            hooks.setdefault(name, PluginHooks(pm, name))
            try:
                settings = hooks[name].configure(config.plugin_settings(route, name))
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"plugins.{name} (route {route.path}): {exc}") from None
            plugins.append(BoundPlugin(hooks[name], settings))
        key, previous = config.server.state_key, config.server.previous_state_keys
        limits = [limit for plugin in plugins if (limit := _upload_limit(plugin, route)) is not None]
        state_key = None if key is None else StateKey(key, previous)
        return cls(plugins, route.plugin_timeout, state_key, min(limits, default=None))

    def started(self, upload: Upload, tags: TagWatch | None = None) -> None:
        """Run ``upload_started`` in order: before any body byte is read."""
        tags = tags or TagWatch(upload)
        for plugin in self.plugins:
            with blame(plugin.name, upload.request_id), holding(plugin.name, upload.request_id, "upload_started"):
                plugin.hooks.upload_started(upload, plugin.settings)
            tags.check(plugin.name)

    def pipeline(self, upload: Upload, tags: TagWatch | None = None) -> Pipeline:
        """The upload's stages, in chain order; when the client sent digests and no stage checks them, a
        :class:`DigestStage` goes first. ``tags`` checks each plugin's change to ``upload.tags``."""
        expected = upload.form_field is None and expected_digests(lowercased(upload.headers))
        tags = tags or TagWatch(upload)
        stages = self._stages(upload, tags)
        if expected and not any(isinstance(stage, DigestStage) for _, stage in stages):
            stages.insert(0, (DIGESTS, DigestStage(upload)))
        return self._pipeline(upload, stages, tags)

    def _stages(self, upload: Upload, tags: TagWatch) -> list[tuple[str, UploadStage]]:
        stages: list[tuple[str, UploadStage]] = []
        for plugin in self.plugins:
            with guarded(plugin.name, "upload_stage", request_id=upload.request_id):
                if (made := plugin.hooks.upload_stage(upload, plugin.settings)) is not None:
                    made = checked_stage(plugin.name, upload.request_id, made, UPLOAD_STAGE_CALLS)
                    stages.append((plugin.name, made))
            tags.check(plugin.name)
        return stages

    def _pipeline(self, upload: Upload, stages: list[tuple[str, UploadStage]], tags: TagWatch) -> Pipeline:
        request_id, timeout, key = upload.request_id, self.timeout, self.state_key
        return Pipeline(
            stages, self.observe, request_id=request_id, timeout=timeout, upload=upload, state_key=key, tags=tags
        )

    async def restore(self, upload: Upload, blob: bytes, upload_id: str, tags: TagWatch | None = None) -> Pipeline:
        """The pipeline that :meth:`Pipeline.save` saved as ``blob``, with new stages from ``upload_stage``, each
        given its state; ``upload`` is the upload as it was then (its ``size`` above all), and ``upload_id`` what
        it was saved for.

        :raise CannotResume: the blob was altered, sealed under another key or for another upload or offset,
            saved in another format, or the route's stages are no longer the ones that saved it (a plugin added,
            removed, or making another stage), or a stage cannot take its state up.
        """
        if self.state_key is None:
            raise CannotResume(chain_state.NO_KEY)
        offset, saved = chain_state.load(self.state_key.open(blob, chain_state.bound_to(upload, upload_id)))
        tags = tags or TagWatch(upload)
        stages = self._stages(upload, tags)
        if saved[:1] and saved[0].plugin == DIGESTS:
            stages.insert(0, (DIGESTS, DigestStage(upload)))
        pipeline = self._pipeline(upload, stages, tags)
        guard = functools.partial(guarded, request_id=upload.request_id)
        try:
            chain_state.restore(stages, saved, offset, upload, guard)
        except BaseException:
            await pipeline.close()
            raise
        return pipeline

    def completed(self, upload: Upload, result: UploadResult) -> None:
        self._notify(upload, "upload_completed", lambda p: p.hooks.upload_completed(upload, result, p.settings))

    def failed(self, upload: Upload, error: UploadError) -> None:
        self._notify(upload, "upload_failed", lambda p: p.hooks.upload_failed(upload, error, p.settings))

    def _notify(self, upload: Upload, hook: str, call: Callable[[BoundPlugin], None]) -> None:
        """Tell every plugin; one that fails is logged, and the others are still told."""
        for plugin in self.plugins:
            try:
                with holding(plugin.name, upload.request_id, hook):
                    call(plugin)
            except Exception:
                log.exception(
                    "request %s: plugin %s failed in %s",
                    upload.request_id,
                    plugin.name,
                    hook,
                    extra={"request_id": upload.request_id},
                )

    async def open_download(self, download: Download, fetch: Fetch, size: int) -> tuple[Fetch, int]:
        """Stack the download stages over ``fetch``; return the outermost reader and its size."""
        for plugin in reversed(self.plugins):
            with blame(plugin.name, download.request_id), holding(plugin.name, download.request_id, "download_stage"):
                made: DownloadStage | None = plugin.hooks.download_stage(download, plugin.settings)
            if made is not None:
                made = checked_stage(plugin.name, download.request_id, made, DOWNLOAD_STAGE_CALLS)
                opening = functools.partial(made.open, fetch, size)
                size = await within(plugin.name, download.request_id, self.timeout, "open", opening)
                fetch = made.read
        return fetch, size


def _stored_as(upload: Upload | None) -> tuple[str, str, dict[str, str]] | None:
    return None if upload is None else (upload.key, upload.content_type, dict(upload.metadata))


class Pipeline:
    """The stages of one upload, fed in chain order."""

    def __init__(
        self,
        stages: list[tuple[str, UploadStage]],
        observe: StageObserver | None = None,
        *,
        request_id: str = "-",
        timeout: float = 30.0,
        upload: Upload | None = None,
        state_key: StateKey | None = None,
        tags: TagWatch | None = None,
    ) -> None:
        self._stages = stages
        self._state_key = state_key
        self._finished = False
        self._tags = tags
        self._observe = observe
        self._request_id = request_id
        self._timeout = timeout
        self._upload = upload
        self._stored_as = _stored_as(upload)

    def _unchanged(self, name: str) -> None:
        """What S3 was told when the body started holds: a stage that changes it later is refused; so are tags
        S3 would refuse."""
        if self._tags is not None:
            self._tags.check(name)
        upload = self._upload
        if upload is not None and (upload.key, upload.content_type, upload.metadata) != self._stored_as:
            raise PluginError(
                name,
                f"The plugin {name!r} changed the upload's key, content type or metadata after the body started, "
                "when S3 already had them; the upload was not stored (set them in upload_started or upload_stage).",
            )

    async def feed(self, block: bytes, first: int = 0) -> bytes:
        for name, stage in self._stages[first:]:
            if not block:
                break
            started = time.perf_counter()
            fed = await within(name, self._request_id, self._timeout, "feed", functools.partial(stage.feed, block))
            block = output(name, self._request_id, fed)
            self._unchanged(name)
            if self._observe is not None:
                self._observe(name, time.perf_counter() - started)
        return block

    def unmovable(self) -> list[str]:
        """The plugins whose stages declare they cannot move (``movable = False``): while there are any, the upload
        goes on only in this process, with this pipeline."""
        return [name for name, stage in self._stages if not stage.movable]

    def save(self, upload_id: str) -> bytes:
        """Every stage's state between two blocks, sealed for this upload (``upload_id`` and its route, bucket and
        key) at its offset (``upload.size``): what :meth:`Chain.restore` takes.

        :raise CannotResume: a stage cannot move (``movable = False``) or does not save its state (``save``
            returned ``None``): the upload can go on only with this pipeline, in this process.
        """
        if self._upload is None or self._state_key is None:
            raise CannotResume(chain_state.NO_KEY)
        if self._finished:
            raise RuntimeError("A finished pipeline has no state to save.")
        guard = functools.partial(guarded, request_id=self._request_id)
        document = chain_state.dump(chain_state.save(self._stages, guard), self._upload.size)
        return self._state_key.seal(document, chain_state.bound_to(self._upload, upload_id))

    async def finish(self) -> bytes:
        """Finish each stage in order, passing its trailing bytes through the stages after it."""
        self._finished = True
        tail = bytearray()
        for i, (name, stage) in enumerate(self._stages):
            started = time.perf_counter()
            trailing = output(
                name, self._request_id, await within(name, self._request_id, self._timeout, "finish", stage.finish)
            )
            self._unchanged(name)
            if self._observe is not None:
                self._observe(name, time.perf_counter() - started)
            if trailing:
                tail += await self.feed(trailing, i + 1)
        return bytes(tail)

    async def close(self) -> None:
        for name, stage in self._stages:
            try:
                await sliced(name, self._request_id, "close", stage.close)
            except Exception:
                log.exception(
                    "request %s: plugin %s failed to close its stage",
                    self._request_id,
                    name,
                    extra={"request_id": self._request_id},
                )
