"""The plugins' start-up and shutdown: once per server, for each plugin the routes list."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .plugin_manager import PluginHooks, PluginLoadError
from .routes import Route

log = logging.getLogger(__name__)

CANCEL_WAIT_SECONDS = 5.0
"""How long a shutdown hook cancelled at the end of the grace may take to let go."""


async def within_grace(awaitable: Awaitable[Any], grace: float, hurry: asyncio.Event | None = None) -> None:
    """Wait for ``awaitable`` for up to ``grace`` seconds, or until ``hurry`` is set; then cancel it."""
    waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(awaitable)}
    if hurry is not None:
        waiters.add(asyncio.ensure_future(hurry.wait()))
    try:
        await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


@dataclass
class _Listed:
    hooks: PluginHooks
    settings: dict[str, Any] = field(default_factory=dict)
    """What ``aiouploader_configure`` returned, by the path of each route that lists the plugin."""


class Lifespan:
    """Starts the plugins the routes list, in order, and shuts the started ones down once, within a grace."""

    def __init__(self, routes: list[Route], grace: float) -> None:
        self._plugins: dict[str, _Listed] = {}
        for route in routes:
            for plugin in route.chain.plugins:
                self._plugins.setdefault(plugin.name, _Listed(plugin.hooks)).settings[route.path] = plugin.settings
        self._grace = grace
        self._started: list[_Listed] = []
        self._stopped = False

    async def startup(self) -> None:
        """Await each plugin's ``aiouploader_startup``; one that fails stops start-up with a line naming it."""
        for plugin in self._plugins.values():
            try:
                starting = plugin.hooks.startup(plugin.settings)
                if starting is not None:
                    await starting
            except Exception as exc:
                log.exception("plugin %s failed to start", plugin.hooks.name)
                await self.shutdown(self._grace)
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                raise PluginLoadError(f"plugin {plugin.hooks.name}: cannot start ({reason})") from None
            self._started.append(plugin)

    async def shutdown(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """Run the started plugins' ``aiouploader_shutdown`` at once, the first time only; cancel those still
        running after ``grace`` seconds, or when ``hurry`` is set."""
        if self._stopped:
            return
        self._stopped = True
        stopping = {asyncio.create_task(self._shutdown(plugin, grace)): plugin.hooks.name for plugin in self._started}
        if not stopping:
            return
        await within_grace(asyncio.wait(set(stopping)), grace, hurry)
        late = [task for task in stopping if not task.done()]
        for task in late:
            log.warning(
                "plugin %s: shutdown still running at the end of server.shutdown_grace (%.1f s for it): cancelled",
                stopping[task],
                grace,
            )
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=CANCEL_WAIT_SECONDS)
        for task, name in stopping.items():
            if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                log.error("plugin %s failed in shutdown", name, exc_info=exc)

    @staticmethod
    async def _shutdown(plugin: _Listed, grace: float) -> None:
        stopping = plugin.hooks.shutdown(plugin.settings, grace)
        if stopping is not None:
            await stopping

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: start-up as the app starts; shutdown with the whole grace unless done already."""
        await self.startup()
        yield
        await self.shutdown(self._grace)


LIFESPAN = web.AppKey("lifespan", Lifespan)
