"""The route table as a whole: paths apart, credentials for what each route asks, routes that reach the same objects.

Each check raises a ``ValueError`` that names the settings at fault; the
configuration model (:mod:`~aiouploader.config`) runs them once it holds
every route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config, RouteConfig

RULES = ("auth", "plugins", "plugin settings", "allow_delete", "if_none_match")
"""What two routes to the same objects must agree on."""


def check_paths(routes: list[RouteConfig]) -> None:
    """No two routes share a path, and none lies inside another."""
    paths = [route.path for route in routes]
    for path in paths:
        for other in paths:
            if other != path and (other + "/").startswith(path + "/"):
                raise ValueError(f"route {other} lies inside route {path}")
    if len(set(paths)) != len(paths):
        raise ValueError("two routes have the same path")


def check_credentials(config: Config) -> None:
    """A scheme a route asks for needs something to check against; a token names routes that exist."""
    paths = {route.path for route in config.routes}
    tokens = config.auth.tokens
    for i, route in enumerate(config.routes):
        if "token" in route.auth and not tokens:
            raise ValueError(f'routes[{i}].auth: "token" needs [[auth.tokens]]; without any, every request is refused')
        if "token" in route.auth and not any(not t.routes or route.path in t.routes for t in tokens):
            raise ValueError(
                f'routes[{i}].auth: "token", but no [[auth.tokens]] covers {route.path} (their routes leave it '
                "out); every token request is refused"
            )
        if "signed" in route.auth and not config.auth.signing_keys:
            raise ValueError(
                f'routes[{i}].auth: "signed" needs [auth.signing_keys]; without any, every request is refused'
            )
    for i, token in enumerate(tokens):
        for path in token.routes:
            if path not in paths:
                raise ValueError(f"auth.tokens[{i}].routes: no route {path} (routes: {', '.join(sorted(paths))})")


def overlapping_routes(config: Config) -> list[tuple[RouteConfig, RouteConfig, list[str]]]:
    """Pairs of routes that reach the same objects (one bucket, one prefix starting the other), with the rules
    they differ in."""
    pairs = []
    for i, route in enumerate(config.routes):
        for other in config.routes[i + 1 :]:
            if route.bucket == other.bucket and (
                route.prefix.startswith(other.prefix) or other.prefix.startswith(route.prefix)
            ):
                rules = [rule for rule in RULES if _rule(config, route, rule) != _rule(config, other, rule)]
                if "plugins" in rules:  # then their settings differ too: not worth naming twice
                    rules = [rule for rule in rules if rule != "plugin settings"]
                pairs.append((route, other, rules))
    return pairs


def check_apart(config: Config) -> None:
    """Two routes to the same objects under different rules would let a client of one go round the other's."""
    for route, other, rules in overlapping_routes(config):
        if rules:
            raise ValueError(
                f"routes {route.path} and {other.path} reach the same objects (bucket {route.bucket!r}, prefixes "
                f"{route.prefix!r} and {other.prefix!r}) but differ in {', '.join(rules)}: a client of one would "
                "go round the other's rules; give them prefixes that do not start one another, or one bucket each"
            )


def overlap_warnings(config: Config) -> list[str]:
    """Routes to the same objects under the same rules: allowed, but an operator should hear of them."""
    return [
        f"routes {route.path} and {other.path} reach the same objects (bucket {route.bucket!r}, prefixes "
        f"{route.prefix!r} and {other.prefix!r}); their rules are the same, so either may overwrite the other's"
        for route, other, rules in overlapping_routes(config)
        if not rules
    ]


def _rule(config: Config, route: RouteConfig, rule: str) -> Any:
    if rule == "plugin settings":
        return [config.plugin_settings(route, name) for name in route.plugins]
    if rule == "auth":
        return sorted(route.auth)
    return getattr(route, rule)
