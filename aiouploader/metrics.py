"""Prometheus metrics, one registry per application, served on ``GET /metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sized
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from botocore.exceptions import ClientError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .middlewares import ATTEMPTS, cancelled_outcome, outcome
from .routes import found_route
from .s3.errors import code_and_status

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
S3_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STAGE_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LAG_INTERVAL = 0.25
"""Seconds between two samples of the event loop's lag."""
M = TypeVar("M", Counter, Gauge, Histogram)


class Metrics:
    """The service's metrics, in a registry of their own (tests run several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        r = self.registry
        self.uploads = Counter(
            "aiouploader_uploads", "Upload requests by route and outcome (created or the error code).",
            ["route", "outcome"], registry=r,
        )  # fmt: skip
        self.received_bytes = Counter(
            "aiouploader_received_bytes", "Body bytes received from clients.", ["route"], registry=r
        )
        self.stored_bytes = Counter(
            "aiouploader_stored_bytes", "Bytes written to S3 by uploads that were stored.", ["route"], registry=r
        )
        self.duration = Histogram(
            "aiouploader_upload_duration_seconds", "Upload request duration, by route and outcome.",
            ["route", "outcome"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("aiouploader_uploads_in_flight", "Upload requests being handled.", registry=r)
        self.buffered = Gauge(
            "aiouploader_part_bytes_in_flight",
            "Bytes of parts and objects being sent to S3 (the buffers that bound memory; "
            "excludes the part being filled).",
            registry=r,
        )
        self.stage_seconds = Histogram(
            "aiouploader_plugin_stage_seconds", "Time spent in a plugin's upload stage per call (feed or finish).",
            ["route", "plugin"], buckets=STAGE_BUCKETS, registry=r,
        )  # fmt: skip
        self.s3_seconds = Histogram(
            "aiouploader_s3_request_seconds", "S3 call latency by operation (to the response headers).",
            ["operation"], buckets=S3_BUCKETS, registry=r,
        )  # fmt: skip
        self.s3_errors = Counter(
            "aiouploader_s3_errors", "Failed S3 calls by operation and error code.", ["operation", "code"], registry=r
        )
        self.aborts = Counter("aiouploader_multipart_aborts", "AbortMultipartUpload calls S3 accepted.", registry=r)
        self.checksum_mismatches = Counter(
            "aiouploader_s3_checksum_mismatches",
            "Parts and objects S3 stored with another checksum than the bytes sent (each a 502), by operation.",
            ["operation"], registry=r,
        )  # fmt: skip
        self.orphans = Counter(
            "aiouploader_orphan_uploads_aborted", "Stale multipart uploads the orphan sweep aborted.", registry=r
        )
        self.resumable = Counter(
            "aiouploader_resumable_uploads",
            "Resumable uploads by route and event: created, resumed, completed, failed, terminated, expired, "
            "abandoned.",
            ["route", "event"], registry=r,
        )  # fmt: skip
        self.loop_lag = Histogram(
            "aiouploader_event_loop_lag_seconds",
            f"How late the event loop woke a timer, sampled every {LAG_INTERVAL:g} seconds: "
            "the time something held the loop while every request waited.",
            buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, looked up once: prometheus_client checks and locks on every ``labels()``."""
        try:
            found: M = self._children[metric, labels]
        except KeyError:
            found = self._children[metric, labels] = metric.labels(*labels)
        return found

    def count_checksum_mismatch(self, operation: str) -> None:
        self.checksum_mismatches.labels(operation).inc()

    def count_upload(self, route: str, outcome: str, seconds: float, received: int, stored: int) -> None:
        """One upload request that ended: by ``outcome``, its duration, the bytes it received and stored."""
        self.child(self.uploads, route, outcome).inc()
        self.child(self.duration, route, outcome).observe(seconds)
        self.child(self.received_bytes, route).inc(received)
        self.child(self.stored_bytes, route).inc(stored)

    def observe_stage(self, route: str) -> Callable[[str, float], None]:
        """A callback for a route's chain: ``(plugin, seconds)`` per stage call."""

        def observe(plugin: str, seconds: float) -> None:
            self.child(self.stage_seconds, route, plugin).observe(seconds)

        return observe

    async def watch_loop_lag(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: sample the event loop's lag while the app runs."""

        async def watch() -> None:
            loop = asyncio.get_running_loop()
            while True:
                due = loop.time() + LAG_INTERVAL
                await asyncio.sleep(LAG_INTERVAL)
                self.loop_lag.observe(max(0.0, loop.time() - due))

        watcher = asyncio.create_task(watch())
        yield
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return code_and_status(exc)[0] or "unknown"
    return type(exc).__name__


class InstrumentedClient:
    """An aiobotocore S3 client whose calls are timed and counted; anything else passes through."""

    def __init__(self, client: Any, metrics: Metrics) -> None:
        self._client = client
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if (
            name.startswith("_")
            or not callable(method)
            or name in ("close", "get_paginator", "can_paginate", "generate_presigned_url")
        ):
            return method
        timed = self.__dict__[name] = self._timed(name, method)  # found here from now on, without __getattr__
        return timed

    def _timed(self, operation: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        metrics = self._metrics

        async def call(**kwargs: Any) -> Any:
            body = kwargs.get("Body")
            size = len(body) if operation in ("upload_part", "put_object") and isinstance(body, Sized) else 0
            metrics.buffered.inc(size)
            started = time.perf_counter()
            try:
                response = await method(**kwargs)
            except Exception as exc:  # not a cancellation: the server gave up the call, S3 did not fail it
                metrics.s3_errors.labels(operation, _error_code(exc)).inc()
                raise
            finally:
                metrics.buffered.dec(size)
                metrics.child(metrics.s3_seconds, operation).observe(time.perf_counter() - started)
            if operation == "abort_multipart_upload":
                metrics.aborts.inc()
            return response

        return call


METRICS = web.AppKey("metrics", Metrics)


async def handle_metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[METRICS].exposition())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@web.middleware
async def count_uploads(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every upload request (PUT or POST on a route): in flight, then by outcome, duration and bytes."""
    found = found_route(request)
    if found is None or request.method not in ("PUT", "POST") or (metrics := request.app.get(METRICS)) is None:
        return await handler(request)
    route = found.route.path
    started = time.perf_counter()
    result = "cut"
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        result = outcome(request, response.status)
        return response
    except asyncio.CancelledError:
        result = cancelled_outcome(request)
        raise
    finally:
        metrics.in_flight.dec()
        tried = request.get(ATTEMPTS)
        metrics.count_upload(
            route,
            result,
            time.perf_counter() - started,
            sum(upload.size for upload in tried.uploads) if tried else 0,
            sum(int(done["stored_size"]) for done in tried.results) if tried else 0,
        )
