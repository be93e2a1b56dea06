"""The service's state: admission of uploads and downloads, the memory budget, drain, health and readiness."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import allocator
from .auth import Authorizer, Grant
from .config import Config
from .errors import Draining, NotReady, Overloaded, PayloadTooLarge
from .lifespan import within_grace
from .middlewares import error_response
from .routes import Route
from .s3 import S3, translate
from .session import UploadLimits

READY_CACHE_SECONDS = 3.0
ABORT_WAIT_SECONDS = 60.0
IDLE_BEFORE_GIVING_BACK = 0.2
"""Seconds without uploads after which freed memory goes back to the system."""


@dataclass
class Service:
    """What the server knows across requests: which uploads and downloads are in flight, and what they may use."""

    config: Config
    routes: list[Route]
    s3: S3
    draining: bool = False
    uploads: set[asyncio.Task[Any]] = field(default_factory=set)
    """The tasks of the upload requests being handled."""
    cut: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the drain's grace is over: an upload that can end its request early and keep what came (a
    resumable upload's) does so, rather than being cancelled."""
    _cuttable: set[asyncio.Task[Any]] = field(default_factory=set)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _ready_at: float = field(default=-1e9)
    _ready_error: str | None = None
    authorizer: Authorizer = field(init=False)
    limits: UploadLimits = field(init=False)
    """Every upload's limits but those of its route and credentials."""
    _by_client: Counter[str] = field(default_factory=Counter)
    _reserved: int = 0
    _downloads: int = 0
    _give_back: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.authorizer = Authorizer(self.config.auth)
        server = self.config.server
        self.limits = UploadLimits(self.config.upload.block_size, server.body_idle_timeout, server.body_timeout)

    def buffer_need(self, content_length: int | None) -> int:
        """The most an upload of ``content_length`` bytes (``None``: unknown) may hold in memory."""
        return self.config.upload_memory(content_length)

    def admit(self, grant: Grant | None, content_length: int | None = None) -> int:
        """Refuse an upload beyond the limits of the server or of the client's credentials; the bytes of
        ``server.max_buffered`` it will hold."""
        if self.draining:
            raise Draining("The server is shutting down; retry on another instance.")
        if len(self.uploads) >= self.config.server.max_uploads:
            raise Overloaded("The server is handling as many uploads as it may; retry shortly.", retry_after=1)
        if grant and grant.max_uploads is not None and self._by_client[grant.who] >= grant.max_uploads:
            raise Overloaded(f"{grant.who} has {grant.max_uploads} uploads in progress already.", retry_after=1)
        need, budget = self.buffer_need(content_length), self.config.server.max_buffered
        if need > budget:
            raise PayloadTooLarge(
                f"An upload of {content_length} bytes needs parts so large (S3 takes at most 10,000) that they "
                f"would hold {need} bytes of memory, more than server.max_buffered ({budget} bytes) allows."
            )
        if self._reserved + need > budget:
            raise Overloaded("The server's memory for uploads is taken; retry shortly.", retry_after=1)
        return need

    def hold(self, need: int) -> Callable[[], None]:
        """Reserve ``need`` bytes of ``server.max_buffered`` beyond any one request (what a resumable upload keeps
        between its requests); ``503 overloaded`` when they are taken. The function returned gives them back."""
        if self._reserved + need > self.config.server.max_buffered:
            raise Overloaded("The server's memory for uploads is taken; retry shortly.", retry_after=1)
        self._reserved += need
        held = [need]

        def give_back() -> None:
            self._reserved -= held.pop() if held else 0

        return give_back

    @contextlib.contextmanager
    def in_flight(
        self, grant: Grant | None = None, content_length: int | None = None, *, cuttable: bool = False
    ) -> Iterator[None]:
        """Count the current task as an upload: for the limits, and for :meth:`drain` to wait for (``cuttable``:
        it ends early once :attr:`cut` is set, so the drain does not cancel it)."""
        need = self.admit(grant, content_length)
        task = asyncio.current_task()
        assert task is not None
        self.uploads.add(task)
        if cuttable:
            self._cuttable.add(task)
        who = grant.who if grant else ""
        self._by_client[who] += 1
        self._reserved += need
        self._idle.clear()
        if self._give_back is not None:
            self._give_back.cancel()
        try:
            yield
        finally:
            self.uploads.discard(task)
            self._cuttable.discard(task)
            self._by_client[who] -= 1
            self._reserved -= need
            if not self.uploads:
                self._idle.set()
                self._give_back = asyncio.get_running_loop().call_later(IDLE_BEFORE_GIVING_BACK, allocator.give_back)

    @contextlib.contextmanager
    def downloading(self) -> Iterator[None]:
        """Count a download against ``server.max_downloads``, whose S3 connections uploads never wait for."""
        if self._downloads >= self.config.server.max_downloads:
            raise Overloaded("The server is serving as many downloads as it may; retry shortly.", retry_after=1)
        self._downloads += 1
        try:
            yield
        finally:
            self._downloads -= 1

    async def _until_idle(self, seconds: float, hurry: asyncio.Event | None = None) -> None:
        if self.uploads:
            await within_grace(self._idle.wait(), seconds, hurry)

    async def drain(self, grace: float, hurry: asyncio.Event | None = None) -> int:
        """Refuse new uploads; give those in flight ``grace`` seconds, then cancel them (those that can, end their
        request early instead: :attr:`cut`).

        A cancelled upload aborts its S3 upload before its task lets go of it;
        this waits for that too. ``hurry`` set ends the grace early. Returns how
        many uploads were cancelled.
        """
        self.draining = True
        await self._until_idle(grace, hurry)
        self.cut.set()
        cancelled = [task for task in self.uploads if task not in self._cuttable]
        for task in cancelled:
            task.cancel()
        await self._until_idle(ABORT_WAIT_SECONDS)
        late = list(self.uploads)  # cut, and still not ended
        for task in late:
            task.cancel()
        await self._until_idle(ABORT_WAIT_SECONDS)
        return len(cancelled) + len(late)

    async def ready(self) -> str | None:
        """``None`` when every route's bucket answers, else why not; cached briefly."""
        if time.monotonic() - self._ready_at > READY_CACHE_SECONDS:
            self._ready_error = None
            try:
                async with asyncio.timeout(self.config.s3.connect_timeout):
                    for bucket in sorted({route.config.bucket for route in self.routes}):
                        try:
                            await self.s3.head_bucket(bucket)
                        except Exception as exc:
                            self._ready_error = f"bucket {bucket}: {translate(exc, 'checking the bucket').message}"
                            break
            except TimeoutError:
                self._ready_error = "S3 did not answer in time."
            self._ready_at = time.monotonic()
        return self._ready_error


SERVICE = web.AppKey("service", Service)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if service.draining:
        return error_response(request, Draining("The server is shutting down."))
    problem = await service.ready()
    if problem:
        return error_response(request, NotReady(f"S3 is not ready: {problem}"))
    return web.json_response({"status": "ready"})
