"""CORS per route, so a page can upload with a signed URL by PUT or by a form POST."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import Forbidden, NotFound
from .handlers import SERVICE
from .middlewares import error_response
from .routes import Route, resolve


def _route(request: web.Request) -> Route | None:
    try:
        route, _ = resolve(request.app[SERVICE].routes, request.raw_path.split("?", 1)[0])
    except NotFound:
        return None
    return route


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights and mark responses for origins a route allows; others get no CORS headers."""
    origin = request.headers.get("Origin")
    route = _route(request) if origin else None
    settings = route.config.cors if route else None
    if origin is None or settings is None:
        return await handler(request)
    allowed = "*" in settings.allow_origins or origin in settings.allow_origins
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        method = request.headers["Access-Control-Request-Method"]
        if not allowed or method not in settings.allow_methods:
            return error_response(request, Forbidden(f"Origin {origin} may not {method} here."))
        response: web.StreamResponse = web.Response(status=204)
        response.headers.update(
            {
                "Access-Control-Allow-Methods": ", ".join(settings.allow_methods),
                "Access-Control-Allow-Headers": ", ".join(settings.allow_headers),
                "Access-Control-Max-Age": str(settings.max_age),
            }
        )
    else:
        response = await handler(request)
    if allowed and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = ", ".join(settings.expose_headers)
        response.headers.add("Vary", "Origin")
    return response
