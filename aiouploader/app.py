"""The aiohttp application: routes from the config, one S3 client, the handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pluggy
from aiobotocore.config import AioConfig
from aiohttp import web

from . import allocator, handlers, service
from .chain import Chain, order_warnings
from .chain_state import StateKey
from .config import Config, S3Config
from .cors import cors, mark_response
from .lifespan import LIFESPAN, Lifespan
from .logs import access
from .metrics import METRICS, InstrumentedClient, Metrics, count_uploads, handle_metrics
from .middlewares import errors
from .orphans import keep_sweeping
from .plugin_manager import check_plugin_tables, make_plugin_manager
from .routes import ROUTES, Route, find_route
from .s3 import S3
from .s3.loading import s3_session
from .s3.prepared import prepared_parts
from .tus.handlers import method_override
from .tus.states import UploadStates
from .tus.uploads import RESUMABLE_UPLOADS, ResumableUploads

log = logging.getLogger(__name__)

LEASE_MARGIN = 60.0
"""Seconds a request holds its resumable upload beyond ``server.body_timeout``: to finish what it received."""


def build_routes(config: Config, pm: pluggy.PluginManager) -> list[Route]:
    """Bind every route's plugins to their settings; a ConfigError stops start-up."""
    check_plugin_tables(pm, config)
    return [Route(route, Chain.for_route(pm, config, route)) for route in config.routes]


def client_config(config: S3Config, downloads: int) -> AioConfig:
    """The S3 client's settings: its pool holds a connection for each of ``downloads``, and as many again for uploads
    and probes, so that slow readers never hold up an upload."""
    return AioConfig(
        region_name=config.region,
        signature_version="s3v4",
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        retries={"mode": "standard", "max_attempts": config.max_attempts},
        max_pool_connections=max(32, config.parts_in_flight * 16) + downloads,
        s3={"addressing_style": config.addressing_style, "payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


READ_BUFFER = 256 * 1024
"""What aiohttp buffers of a body before it stops reading the socket is twice this (asyncio reads 256 KiB at a time);
blocks are joined from these pieces. A block-sized buffer (1 MiB) held about 2 MiB more per upload at its peak."""


def tls_verify(endpoint_url: str | None) -> bool | None:
    """``False`` for an endpoint over plain HTTP, which then builds no TLS context and loads no CA bundle; otherwise
    botocore's default (verify, with ``AWS_CA_BUNDLE`` or ``ca_bundle`` where set)."""
    return False if endpoint_url is not None and endpoint_url.lower().startswith("http://") else None


def server_options(config: Config) -> dict[str, Any]:
    """How aiohttp's server reads requests: bodies as sent, in pieces of at most :data:`READ_BUFFER`, no slow headers.

    No aiohttp access log: the ``access`` middleware logs every request. A
    client that goes away cancels its handler: its upload is aborted, its
    download gives back its S3 connection.
    """
    return {
        "access_log": None,
        "handler_cancellation": True,
        "auto_decompress": False,
        "read_bufsize": min(config.upload.block_size, READ_BUFFER),
        "keepalive_timeout": config.server.keepalive_timeout,
    }


def make_metrics_app(metrics: Metrics) -> web.Application:
    """``/metrics`` alone, for ``server.metrics_port``."""
    app = web.Application()
    app[METRICS] = metrics
    app.router.add_get("/metrics", handle_metrics)
    return app


def make_app(config: Config, pm: pluggy.PluginManager | None = None) -> web.Application:
    pm = pm or make_plugin_manager()
    routes = build_routes(config, pm)
    for warning in [w for route in config.routes for w in order_warnings(pm, route)]:
        log.warning(warning)
    app = web.Application(middlewares=[find_route, method_override, cors, access, count_uploads, errors])
    app[ROUTES] = routes
    app.on_response_prepare.append(mark_response)
    metrics = app[METRICS] = Metrics()
    for route in routes:
        route.chain.observe = metrics.observe_stage(route.path)
    lifespan = app[LIFESPAN] = Lifespan(routes, config.server.shutdown_grace)
    app.cleanup_ctx.append(lifespan.context)
    app.cleanup_ctx.append(metrics.watch_loop_lag)
    resumable = app[RESUMABLE_UPLOADS] = ResumableUploads(
        lambda route, event: metrics.resumable.labels(route, event).inc()
    )
    app.on_shutdown.append(resumable.close)

    async def s3_client(app: web.Application) -> AsyncIterator[None]:
        async with s3_session().create_client(
            "s3",
            endpoint_url=config.s3.endpoint_url,
            verify=tls_verify(config.s3.endpoint_url),
            config=client_config(config.s3, config.server.max_downloads),
        ) as client:
            s3 = S3(
                InstrumentedClient(prepared_parts(client), metrics),
                config.s3,
                on_checksum_mismatch=metrics.count_checksum_mismatch,
            )
            allocator.give_back()  # what building the client parsed and dropped
            app[service.SERVICE] = served = service.Service(config, routes, s3)
            expiring = None
            if (key := config.server.state_key) is not None:
                lease = config.server.body_timeout + LEASE_MARGIN
                resumable.states = UploadStates(s3, StateKey(key, config.server.previous_state_keys), lease)
                if any(route.config.resumable for route in routes):
                    interval = config.s3.orphan_sweep_interval
                    expiring = asyncio.create_task(resumable.keep_sweeping(served, interval))
            sweeper = None
            if config.s3.orphan_ttl > 0:
                targets = [(route.config.bucket, route.config.prefix) for route in routes]
                ttl, interval = config.s3.orphan_ttl, config.s3.orphan_sweep_interval
                kept = None if resumable.states is None else resumable.states.multipart_ids
                sweeper = asyncio.create_task(keep_sweeping(s3, targets, ttl, interval, metrics.orphans.inc, kept))
            yield
            for task in (sweeper, expiring):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await s3.close()

    app.cleanup_ctx.append(s3_client)
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/readyz", service.readyz)
    if config.server.metrics_port is None:
        app.router.add_get("/metrics", handle_metrics)
    app.router.add_route("*", r"/{tail:[\s\S]*}", handlers.handle, expect_handler=handlers.expect_handler)
    return app
