"""Calling a plugin's code: its failures blamed on it, its time on the event loop logged, its stage calls bounded."""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .errors import PluginError, UploadError

log = logging.getLogger("aiouploader.chain")  # the chain's log lines, under the name operators filter on
T = TypeVar("T")

HOLD_WARNING_SECONDS = 0.1
"""A plugin that holds the event loop this long at one stretch is logged: every other request waited meanwhile."""


def held(name: str, request_id: str, call: str, seconds: float) -> None:
    if seconds < HOLD_WARNING_SECONDS:
        return
    log.warning(
        "request %s: plugin %s held the event loop for %.3f seconds in %s(), stalling every other request; "
        "blocking work belongs in asyncio.to_thread",
        request_id,
        name,
        seconds,
        call,
        extra={"request_id": request_id, "fields": {"plugin": name, "call": call, "held_seconds": round(seconds, 6)}},
    )


@contextmanager
def holding(name: str, request_id: str, call: str) -> Iterator[None]:
    """Time a synchronous hook call: all of it holds the event loop."""
    started = time.perf_counter()
    try:
        yield
    finally:
        held(name, request_id, call, time.perf_counter() - started)


@types.coroutine
def sliced(name: str, request_id: str, call: str, start: Callable[[], Awaitable[T]]) -> Generator[Any, Any, T]:
    """Await ``start()``, timing each stretch of the plugin's code between two suspensions."""
    steps: Generator[Any, Any, T] | None = None
    value: Any = None
    throw = False
    while True:
        started = time.perf_counter()
        try:
            if steps is None:
                steps = start().__await__()
            suspended = steps.throw(value) if throw else steps.send(value)
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            if (seconds := time.perf_counter() - started) >= HOLD_WARNING_SECONDS:
                held(name, request_id, call, seconds)
        try:
            value, throw = (yield suspended), False
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:
            value, throw = exc, True


def _blamed(name: str, request_id: str, exc: BaseException) -> PluginError | None:
    """What :func:`blame` raises for ``exc``; ``None`` to let it through."""
    if isinstance(exc, UploadError):
        return None
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is None or task.cancelling():
            return None
        log.error("request %s: plugin %s raised CancelledError", request_id, name, extra={"request_id": request_id})
        return PluginError(name)
    if isinstance(exc, Exception | SystemExit | KeyboardInterrupt):
        log.exception("request %s: plugin %s failed", request_id, name, extra={"request_id": request_id})
        error = PluginError(name)
        error.__cause__ = exc
        return error
    return None


@contextmanager
def blame(name: str, request_id: str) -> Iterator[None]:
    """Let a plugin's :class:`UploadError` through; turn anything else into ``plugin_error``.

    That includes ``SystemExit`` and a ``CancelledError`` the plugin raised
    itself (the task is not being cancelled): they would end the server or
    drop the connection without an answer.
    """
    try:
        yield
    except BaseException as exc:
        if (error := _blamed(name, request_id, exc)) is None:
            raise
        raise error from error.__cause__


@contextmanager
def guarded(name: str, call: str, *, request_id: str) -> Iterator[None]:
    """A synchronous call of a plugin's code: blamed on it, and timed."""
    with blame(name, request_id), holding(name, request_id, call):
        yield


def output(name: str, request_id: str, data: object) -> bytes:
    """A stage's output, which must be bytes: anything else is the plugin's error, not the next one's."""
    if isinstance(data, bytes):
        return data
    log.error(
        "request %s: plugin %s returned %s from its stage instead of bytes",
        request_id,
        name,
        type(data).__name__,
        extra={"request_id": request_id},
    )
    raise PluginError(name)


UPLOAD_STAGE_CALLS = ("feed", "finish", "close")
DOWNLOAD_STAGE_CALLS = ("open", "read")


def checked_stage(name: str, request_id: str, made: T, calls: tuple[str, ...]) -> T:
    """What ``upload_stage`` or ``download_stage`` returned, which must have the ``calls`` the chain makes: one
    without them is the plugin's error, told as such now rather than as a server error at the missing call."""
    if missing := [call for call in calls if not callable(getattr(made, call, None))]:
        log.error(
            "request %s: plugin %s returned %s from its stage hook, which has no %s()",
            request_id,
            name,
            type(made).__name__,
            "(), no ".join(missing),
            extra={"request_id": request_id},
        )
        raise PluginError(name)
    return made


async def within(name: str, request_id: str, limit: float, call: str, start: Callable[[], Awaitable[T]]) -> T:
    """Await one stage call, ``start()``, under :func:`blame`, timing its stretches on the event loop; one that
    takes over ``limit`` seconds is a plugin error too."""
    # blame() written out: a context manager per call is a generator and two calls more, for every block
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            return await sliced(name, request_id, call, start)
    except BaseException as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            log.error(
                "request %s: plugin %s timed out after %g seconds in %s()",
                request_id,
                name,
                limit,
                call,
                extra={"request_id": request_id},
            )
            raise PluginError(name, f"The plugin {name!r} timed out after {limit:g} seconds.") from None
        if (error := _blamed(name, request_id, exc)) is None:
            raise
        raise error from error.__cause__
