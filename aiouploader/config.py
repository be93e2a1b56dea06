"""The configuration model: one TOML file, overridden by ``AIOUPLOADER_<SECTION>__<KEY>``."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from .sizes import parse_size

ENV_PREFIX = "AIOUPLOADER_"
MIN_PART_SIZE = 5 * 1024**2
MAX_PART_SIZE = 5 * 1024**3

Size = Annotated[int, BeforeValidator(parse_size)]


class ConfigError(Exception):
    """An unusable setting; the message names it and says what is wrong."""


class Settings(BaseModel):
    """Base of every settings model, the plugins' included: unknown names are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Settings):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    body_idle_timeout: float = Field(60.0, gt=0)
    keepalive_timeout: float = Field(75.0, gt=0)
    """Seconds an idle connection stays open; also the most a client may take to send request headers."""
    body_timeout: float = Field(3600.0, gt=0)
    """Seconds a client gets to send a whole body (408 after), against slow trickles."""
    shutdown_grace: float = Field(30.0, ge=0)
    max_uploads: int = Field(64, ge=1)
    """Uploads handled at once; more get 503 ``overloaded`` with Retry-After."""
    max_buffered: Size = 2 * 1024**3
    """Memory all uploads together may hold; each reserves its bound when it starts (503 beyond)."""
    tls_cert: str | None = None
    """PEM certificate chain: serve HTTPS (with ``tls_key``)."""
    tls_key: str | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class S3Config(Settings):
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing_style: Literal["auto", "path", "virtual"] = "path"
    part_size: Size = 8 * 1024**2
    parts_in_flight: int = Field(4, ge=1, le=64)
    checksum_algorithm: Literal["crc32c", "crc32", "sha256", "none"] = "crc32c"
    content_md5: bool = True
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    orphan_ttl: float = Field(86400.0, ge=0)
    orphan_sweep_interval: float = Field(3600.0, gt=0)

    @field_validator("part_size")
    @classmethod
    def _part_size_in_s3_range(cls, value: int) -> int:
        if not MIN_PART_SIZE <= value <= MAX_PART_SIZE:
            raise ValueError("must be between 5MiB and 5GiB (the S3 part size limits)")
        return value


class UploadConfig(Settings):
    block_size: Size = 1024**2

    @field_validator("block_size")
    @classmethod
    def _block_size_sane(cls, value: int) -> int:
        if not 4096 <= value <= 64 * 1024**2:
            raise ValueError("must be between 4KiB and 64MiB")
        return value


Method = Literal["GET", "HEAD", "PUT", "POST", "DELETE"]
ALL_METHODS: tuple[Method, ...] = ("GET", "HEAD", "PUT", "POST", "DELETE")


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
    allow_methods: list[Method] = ["PUT", "POST", "GET", "HEAD"]
    allow_headers: list[str] = ["Content-Type", "Authorization", "Content-MD5", "Content-Digest", "X-Request-ID"]
    expose_headers: list[str] = ["Location", "ETag", "X-Request-ID"]
    max_age: int = Field(600, ge=0)


class RouteConfig(Settings):
    path: str
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""
    plugins: list[str] = []
    plugin_settings: dict[str, dict[str, Any]] = {}
    allow_delete: bool = False
    form_keys: Literal["generated", "filename"] = "generated"
    if_none_match: bool = False
    """Write only where no object exists yet (S3 conditional write); else 412 ``precondition_failed``."""
    plugin_timeout: float = Field(30.0, gt=0)
    auth: list[Literal["token", "signed"]] = []
    direct_upload: bool = False
    """Answer PUT with a 307 to a presigned S3 URL: bytes skip the proxy (no plugin may need them)."""
    direct_upload_expires: int = Field(300, ge=1, le=604800)
    cors: CorsConfig | None = None
    """Let pages from other origins use the route (preflights answered, headers exposed)."""
    """How clients prove they may use the route; empty: anyone who reaches it."""

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
            raise ValueError("must look like /uploads or /a/b: segments of letters, digits and ._~-")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if value.startswith("/") or "\0" in value or len(value.encode()) > 512:
            raise ValueError("must not start with / or contain NUL, and stay under 512 bytes")
        return value

    @field_validator("plugins")
    @classmethod
    def _plugins_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names a plugin twice")
        return value


class Config(Settings):
    server: ServerConfig = ServerConfig()
    s3: S3Config = S3Config()
    upload: UploadConfig = UploadConfig()
    routes: list[RouteConfig] = Field(min_length=1)
    plugins: dict[str, dict[str, Any]] = {}
    auth: AuthConfig = AuthConfig()

    @field_validator("routes")
    @classmethod
    def _paths_distinct(cls, value: list[RouteConfig]) -> list[RouteConfig]:
        paths = [route.path for route in value]
        for path in paths:
            for other in paths:
                if other != path and (other + "/").startswith(path + "/"):
                    raise ValueError(f"route {other} lies inside route {path}")
        if len(set(paths)) != len(paths):
            raise ValueError("two routes have the same path")
        return value

    def plugin_settings(self, route: RouteConfig, name: str) -> dict[str, Any]:
        """The settings of plugin ``name`` on ``route``: the defaults, then the route's overrides."""
        return {**self.plugins.get(name, {}), **route.plugin_settings.get(name, {})}


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``AIOUPLOADER_SECTION__KEY[__KEY...]`` variables onto the parsed TOML."""
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node: Any = data
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"{name}: there is no {'.'.join(path[: i + 1])} to override")
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
            if not isinstance(node, dict | list):
                raise ConfigError(f"{name}: {'.'.join(path[: i + 1])} is not a section")
        if isinstance(node, list):
            raise ConfigError(f"{name}: a list entry needs an index, e.g. ROUTES__0__BUCKET")
        node[path[-1]] = _env_value(raw)
    return data


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validate(data: Mapping[str, Any]) -> Config:
    try:
        return parse_settings(Config, data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load(path: str | Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read ``path`` (or ``$AIOUPLOADER_CONFIG``), apply the environment, validate."""
    path = path or environ.get("AIOUPLOADER_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return validate(apply_env(data, environ))


M = TypeVar("M", bound=BaseModel)


def parse_settings(model: type[M], settings: Mapping[str, Any]) -> M:
    """Validate a plugin's settings; a ``ValueError`` whose one line names the bad setting."""
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{_location(error['loc']) or 'settings'}: {message}") from None
