"""aiohttp's default TLS contexts without the system's CA certificates until their first connection.

aiohttp builds two client contexts when it is imported, and each loads every
certificate of the system's CA bundle: about 2 MiB resident together. The
server's S3 client builds its own context, so these two serve only a plugin
that calls an HTTPS URL with aiohttp's defaults. Here each loads the bundle
when it first wraps a connection, or is asked for its certificates.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable
from typing import Any

USES_CERTIFICATES = ("wrap_bio", "wrap_socket", "get_ca_certs", "cert_store_stats")
"""The context's methods that need its certificates loaded."""


def defer_verify_paths(context: ssl.SSLContext) -> None:
    """Make ``context`` load the default verify paths before the first call of a method that uses them."""

    def load_first(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            for each in USES_CERTIFICATES:
                context.__dict__.pop(each, None)
            ssl.SSLContext.set_default_verify_paths(context)
            return getattr(context, name)(*args, **kwargs)

        return call

    for name in USES_CERTIFICATES:
        setattr(context, name, load_first(name))


def defer_aiohttp_certificates() -> None:
    """Import aiohttp with its default contexts' certificates deferred, unless aiohttp's connector is imported."""
    if "aiohttp.connector" in sys.modules:
        return
    ssl.SSLContext.set_default_verify_paths = defer_verify_paths  # type: ignore[method-assign,assignment]
    try:
        import aiohttp.connector  # noqa: F401
    finally:
        del ssl.SSLContext.set_default_verify_paths
