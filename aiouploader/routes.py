"""A configured route, and finding the route and key of a request path."""

from __future__ import annotations

from dataclasses import dataclass

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


def resolve(routes: list[Route], raw_path: str) -> tuple[Route, str | None]:
    """The route of ``raw_path`` and its still percent-encoded key (``None`` for the route itself)."""
    for route in routes:
        if raw_path in (route.path, route.path + "/"):
            return route, None
        if raw_path.startswith(route.path + "/"):
            return route, raw_path[len(route.path) + 1 :]
    raise NotFound(f"No route serves {raw_path}.")
