"""Who may use the routes: bearer tokens, signing keys, and the origins whose pages may call them."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from .config_base import Settings

_ORIGIN = re.compile(
    r"""(?!http://.*:80$|https://.*:443$)              # browsers leave the default port out
    [a-z][a-z0-9+.-]*://                                # scheme
    (?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])    # host name or [IPv6]
    (?::[0-9]{1,5})?""",
    re.X,
)
"""An Origin header as browsers send it: lowercase ``scheme://host[:port]``, no path, no default port."""


Method = Literal["GET", "HEAD", "PUT", "POST", "DELETE"]
ALL_METHODS: tuple[Method, ...] = ("GET", "HEAD", "PUT", "POST", "DELETE")
CorsMethod = Literal["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]
"""A method a page may send: PATCH too, which resumable uploads use."""


class TokenConfig(Settings):
    """A bearer token, stored as the SHA-256 of the token (``aiouploader hash-token``)."""

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    routes: list[str] = []
    """Route paths the token may use; empty: every route."""
    methods: list[Method] = list(ALL_METHODS)
    prefix: str = ""
    """Keys (under the route) the token may touch start with this; generated keys go under it."""
    max_uploads: int | None = Field(None, ge=1)
    """Uploads this token may have in progress at once."""


class AuthConfig(Settings):
    tokens: list[TokenConfig] = []
    signing_keys: dict[str, str] = {}
    """Signing key id: secret (at least 32 characters), best set from the environment."""

    @field_validator("tokens")
    @classmethod
    def _distinct_hashes(cls, value: list[TokenConfig]) -> list[TokenConfig]:
        first: dict[str, int] = {}
        for i, token in enumerate(value):
            if (j := first.setdefault(token.sha256, i)) != i:
                raise ValueError(
                    f"[{j}] ({value[j].name!r}) and [{i}] ({token.name!r}) have the same sha256; "
                    "each entry needs a token of its own"
                )
        return value

    @field_validator("signing_keys")
    @classmethod
    def _long_enough(cls, value: dict[str, str]) -> dict[str, str]:
        for key_id, secret in value.items():
            if len(secret) < 32:
                raise ValueError(f"signing key {key_id!r} is shorter than 32 characters")
        return value


class CorsConfig(Settings):
    allow_origins: list[str] = Field(min_length=1)
    """Origins whose pages may call the route, e.g. "https://app.example"; "*" for any."""
    allow_methods: list[CorsMethod] = ["PUT", "POST", "GET", "HEAD"]
    allow_headers: list[str] = ["Content-Type", "Authorization", "Content-MD5", "Content-Digest", "X-Request-ID"]
    expose_headers: list[str] = ["Location", "ETag", "X-Request-ID"]
    max_age: int = Field(600, ge=0)

    @field_validator("allow_origins")
    @classmethod
    def _origin_shape(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f'{origin!r} never equals a browser\'s Origin header: write "*" or scheme://host[:port] '
                    "in lowercase, without a path or a default port, e.g. https://app.example"
                )
        return value
