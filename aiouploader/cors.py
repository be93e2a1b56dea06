"""CORS per route, so a page can upload with a signed URL by PUT, by a form POST, or resumably (tus)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler

from .config import CorsConfig
from .errors import Forbidden
from .middlewares import REQUEST_ID, error_response, request_id
from .routes import found_route
from .tus import protocol as tus


def _settings(request: web.Request) -> CorsConfig | None:
    """The CORS settings of the request's route, when it has them and the request has an Origin."""
    found = found_route(request)
    if "Origin" not in request.headers or found is None or found.route.config.cors is None:
        return None
    settings = found.route.config.cors
    if found.route.config.resumable and tus.is_tus_path(found.raw_key):
        return _with_tus(settings)
    return settings


def _with_tus(settings: CorsConfig) -> CorsConfig:
    """The route's settings, and what a tus client sends and reads: a page that may upload may resume."""
    return settings.model_copy(
        update={
            "allow_methods": _union(settings.allow_methods, tus.CORS_METHODS),
            "allow_headers": _union(settings.allow_headers, tus.CORS_REQUEST_HEADERS),
            "expose_headers": _union(settings.expose_headers, tus.CORS_RESPONSE_HEADERS),
        }
    )


def _union(configured: Sequence[str], added: tuple[str, ...]) -> list[str]:
    known = {name.lower() for name in configured}
    return [*configured] + [name for name in added if name.lower() not in known]


def _allowed(settings: CorsConfig, origin: str) -> bool:
    return "*" in settings.allow_origins or origin in settings.allow_origins


def _is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights: 204 for an origin and method the route allows, else 403 without CORS headers."""
    settings = _settings(request)
    if settings is None or not _is_preflight(request):
        return await handler(request)
    origin, method = request.headers["Origin"], request.headers["Access-Control-Request-Method"]
    if not _allowed(settings, origin) or method not in settings.allow_methods:
        return error_response(request, Forbidden(f"Origin {origin} may not {method} here."))
    response = web.Response(status=204)
    response.headers.update(
        {
            REQUEST_ID: request_id(request),
            "Access-Control-Allow-Methods": ", ".join(settings.allow_methods),
            "Access-Control-Allow-Headers": ", ".join(settings.allow_headers),
            "Access-Control-Max-Age": str(settings.max_age),
        }
    )
    _mark(response, settings, origin)
    return response


async def mark_response(request: web.Request, response: web.StreamResponse) -> None:
    """On ``on_response_prepare``: every other response to an allowed origin, streamed or refused early.

    Every response on a route with CORS settings, whatever its Origin, says ``Vary: Origin``: a cache must not
    give an answer without CORS headers to a page that would get them, nor the other way round.
    """
    found = found_route(request)
    if found is None or found.route.config.cors is None:
        return
    if "origin" not in response.headers.get("Vary", "").lower():
        response.headers.add("Vary", "Origin")
    settings = _settings(request)
    if settings is not None and not _is_preflight(request) and _allowed(settings, request.headers["Origin"]):
        _mark(response, settings, request.headers["Origin"])


def _mark(response: web.StreamResponse, settings: CorsConfig, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = ", ".join(settings.expose_headers)
