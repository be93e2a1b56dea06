"""A configured route, and the route of a request: resolved once, by the first middleware."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from .chain import Chain
from .config import RouteConfig
from .errors import NotFound

PROBES = ("/healthz", "/readyz", "/metrics")
"""The service's own paths, answered beside the configured routes (GET and HEAD)."""


@dataclass(frozen=True)
class Route:
    config: RouteConfig
    chain: Chain

    @property
    def path(self) -> str:
        return self.config.path


@dataclass(frozen=True)
class Target:
    """The route a request is for, and its still percent-encoded key (``None`` for the route itself)."""

    route: Route
    raw_key: str | None


ROUTES: web.AppKey[list[Route]] = web.AppKey("routes")
TARGET: web.RequestKey[Target | None] = web.RequestKey("target")
"""Set by :func:`find_route` for every request: ``None`` for a probe or a path no route serves."""


def resolve(routes: list[Route], raw_path: str) -> tuple[Route, str | None]:
    """The route of ``raw_path`` and its still percent-encoded key (``None`` for the route itself)."""
    for route in routes:
        if raw_path in (route.path, route.path + "/"):
            return route, None
        if raw_path.startswith(route.path + "/"):
            return route, raw_path[len(route.path) + 1 :]
    raise NotFound(f"No route serves {raw_path}.")


def raw_path(request: web.Request) -> str:
    """The request's path as sent, without its query; an absolute-form target's path too."""
    target = request.raw_path
    return target.split("?", 1)[0] if target.startswith("/") else request.rel_url.raw_path


def found_route(request: web.Request) -> Target | None:
    """The request's route and key, ``None`` for a probe or a path no route serves; resolved on first use.

    That is in :func:`find_route`, the first middleware, or before it in the ``Expect: 100-continue`` handler,
    which aiohttp runs before any middleware.
    """
    if TARGET not in request:
        found = None
        if request.path not in PROBES:
            with contextlib.suppress(NotFound):
                found = Target(*resolve(request.app[ROUTES], raw_path(request)))
        request[TARGET] = found
    return request[TARGET]


@web.middleware
async def find_route(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the request's route once, for every middleware and handler after this one."""
    found_route(request)
    return await handler(request)


def target(request: web.Request) -> Target:
    """The request's route and key; :class:`NotFound` when no route serves its path."""
    if (found := found_route(request)) is None:
        raise NotFound(f"No route serves {raw_path(request)}.")
    return found
