"""Who may do what on a route: bearer tokens (stored as SHA-256 hashes) and signed URLs.

A signed URL carries its grant in the query string and an HMAC-SHA256 over it,
made with one of several signing keys named by id, so keys can rotate::

    ?expires=1767225600&key_id=k1&max_size=10485760&content_type=application/pdf&signature=<hex>

The signature covers the method, the route, the key (or key prefix), the
expiry, the maximum size and the content type.

Credentials for GET cover HEAD, the headers of the GET. An unknown key id is
answered as a bad signature is (403), so that answers do not tell valid key ids
apart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from .config import AuthConfig, Method
from .errors import Forbidden, PayloadTooLarge, Unauthorized


def hash_token(token: str) -> str:
    """What the config stores for a bearer token: the SHA-256 of its bytes as sent."""
    return hashlib.sha256(token.encode(errors="surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Grant:
    """What an authenticated request may do beyond the route's own rules."""

    who: str
    key_prefix: str = ""
    max_uploads: int | None = None
    """Keys must start with this; a generated key is put under it."""
    max_size: int | None = None
    content_type: str | None = None
    expires: int | None = None
    """When a signed URL stops being valid (Unix time): nothing it grants may outlive it."""


_UNKNOWN_KEY = secrets.token_hex(32)
"""Checked against when a URL names no known key, so that an unknown key id is answered as a bad signature."""


def beyond_scope(
    routes: Collection[str], methods: Collection[str], prefix: str, route: str, method: str, key: str | None, place: str
) -> str | None:
    """What of a request a credential's scope leaves out, as the end of a sentence about the credential (``place``
    names the route as the caller sees it); ``None`` when the scope covers it all. Empty ``routes``: every route."""
    if routes and route not in routes:
        return f"does not cover {place}"
    if method not in methods and not (method == "HEAD" and "GET" in methods):
        return f"does not allow {method}"
    if key is not None and not key.startswith(prefix):
        return f"only covers keys under {prefix!r}"
    return None


def _canonical(method: str, route: str, scope: str, expires: int, max_size: str, content_type: str) -> bytes:
    return "\n".join([method, route, scope, str(expires), max_size, content_type]).encode()


def _signature(secret: str, canonical: bytes) -> str:
    return hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()


def sign(
    secret: str,
    key_id: str,
    *,
    method: Method,
    route: str,
    expires: int,
    key: str | None = None,
    prefix: str | None = None,
    max_size: int | None = None,
    content_type: str | None = None,
) -> str:
    """The query string (without ``?``) of a signed URL for one ``key``, or any key under ``prefix``."""
    if (key is None) == (prefix is None):
        raise ValueError("sign one key or one key prefix")
    scope = f"key:{key}" if key is not None else f"prefix:{prefix}"
    size = "" if max_size is None else str(max_size)
    params = {"expires": str(expires), "key_id": key_id}
    if prefix is not None:
        params["prefix"] = prefix
    if max_size is not None:
        params["max_size"] = size
    if content_type:
        params["content_type"] = content_type
    params["signature"] = _signature(secret, _canonical(method, route, scope, expires, size, content_type or ""))
    return urlencode(params, quote_via=quote)


def signed_url(
    base_url: str,
    secret: str,
    key_id: str,
    *,
    method: Method,
    route: str,
    expires_in: int,
    key: str | None = None,
    prefix: str | None = None,
    max_size: int | None = None,
    content_type: str | None = None,
) -> str:
    """A URL for a browser or a client without credentials, valid ``expires_in`` seconds from now."""
    query = sign(
        secret,
        key_id,
        method=method,
        route=route,
        expires=int(time.time()) + expires_in,
        key=key,
        prefix=prefix,
        max_size=max_size,
        content_type=content_type,
    )
    path = f"{route}/{quote(key, safe='/')}" if key is not None else f"{route}/"
    return f"{base_url.rstrip('/')}{path}?{query}"


class Authorizer:
    """Checks a request against the tokens and signing keys of the config."""

    def __init__(self, config: AuthConfig) -> None:
        self._tokens = {token.sha256: token for token in config.tokens}
        self._keys = config.signing_keys

    def check(
        self,
        *,
        schemes: list[str],
        method: str,
        route: str,
        key: str | None,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        content_length: int | None,
        now: float | None = None,
    ) -> Grant | None:
        """The grant of a request on a route accepting ``schemes``; ``None`` for an open route.

        Raises :class:`Unauthorized` without usable credentials and
        :class:`Forbidden` when they do not cover this route, method or key.
        """
        if not schemes:
            return None
        if "signed" in schemes and "signature" in query:
            return self._check_signed(method, route, key, query, content_length, now or time.time())
        authorization = headers.get("Authorization", "")
        if "token" in schemes and authorization[:7].lower() == "bearer ":
            return self._check_token(method, route, key, authorization[7:].strip())
        raise Unauthorized(
            "This route needs credentials: "
            + " or ".join(
                {"token": "an 'Authorization: Bearer <token>' header", "signed": "a signed URL"}[s] for s in schemes
            )
            + ".",
            headers={"WWW-Authenticate": 'Bearer realm="aiouploader"'} if "token" in schemes else None,
        )

    def _check_token(self, method: str, route: str, key: str | None, token: str) -> Grant:
        digest = hash_token(token)
        found = None
        for known, config in self._tokens.items():
            if hmac.compare_digest(known, digest):
                found = config
        if found is None:
            raise Unauthorized(
                "The bearer token is not valid.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        beyond = beyond_scope(found.routes, found.methods, found.prefix, route, method, key, f"the route {route}")
        if beyond is not None:
            raise Forbidden(f"The token {found.name!r} {beyond}.")
        return Grant(f"token:{found.name}", found.prefix, found.max_uploads)

    def _check_signed(
        self, method: str, route: str, key: str | None, query: Mapping[str, str], content_length: int | None, now: float
    ) -> Grant:
        secret = self._keys.get(query.get("key_id", ""))
        known = secret is not None
        secret = secret or _UNKNOWN_KEY
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            raise Unauthorized("The signed URL has no valid expiry.") from None
        if "prefix" in query:
            scope, covered = f"prefix:{query['prefix']}", key is None or key.startswith(query["prefix"])
        else:
            scope, covered = f"key:{key}", key is not None
        max_size, content_type = query.get("max_size", ""), query.get("content_type", "")
        sent = query.get("signature", "")
        signed_for = [method, "GET"] if method == "HEAD" else [method]
        canonicals = (_canonical(m, route, scope, expires, max_size, content_type) for m in signed_for)
        matches = sent.isascii() and any(hmac.compare_digest(_signature(secret, c), sent) for c in canonicals)
        if not (known and matches and covered):
            raise Forbidden("The signature does not match this request (method, route, key, limits or expiry).")
        if now > expires:
            raise Forbidden("The signed URL has expired.")
        size = int(max_size) if max_size.isdigit() else None
        if size is not None and content_length is not None and content_length > size:
            raise PayloadTooLarge(f"The upload is larger than the {size} bytes the signed URL allows.")
        return Grant(f"signed:{query['key_id']}", query.get("prefix", ""), None, size, content_type or None, expires)
