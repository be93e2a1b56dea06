"""The configuration model: every setting, its default and what it accepts (config_file reads it in)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from botocore.handlers import VALID_BUCKET
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url, validate_region_name
from pydantic import Field, ValidationInfo, field_validator, model_validator

from . import config_routes
from .checksums import HASHES
from .config_access import ALL_METHODS as ALL_METHODS
from .config_access import AuthConfig as AuthConfig
from .config_access import CorsConfig as CorsConfig
from .config_access import Method as Method
from .config_access import TokenConfig as TokenConfig
from .config_base import ConfigError as ConfigError
from .config_base import Settings as Settings
from .config_base import Size as Size
from .config_base import did_you_mean as did_you_mean
from .config_base import parse_settings as parse_settings
from .hosts import Host
from .keys import RESERVED
from .s3.parts import MAX_PART_SIZE, MIN_PART_SIZE, upload_memory
from .s3api.settings import BucketName, S3ApiConfig
from .s3api.settings import check as check_s3_api


class ServerConfig(Settings):
    host: Host = "127.0.0.1"
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
    max_downloads: int = Field(64, ge=1)
    """GET and HEAD requests on keys answered at once, each with an S3 connection of their own that uploads
    never wait for; more get 503 ``overloaded`` with Retry-After."""
    max_buffered: Size = 2 * 1024**3
    """Memory all uploads together may hold; each reserves its bound when it starts (503 beyond)."""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """Serve ``/metrics`` on this port (of ``metrics_host``) alone, not on ``port``."""
    metrics_host: Host = "127.0.0.1"
    tls_cert: str | None = None
    """PEM certificate chain: serve HTTPS (with ``tls_key``)."""
    tls_key: str | None = None
    state_key: str | None = None
    """The secret every replica seals and opens saved upload state with; from the environment."""
    previous_state_keys: list[str] = []
    """Secrets saved upload state is still opened with, not sealed with: while replicas move to a new key."""

    @field_validator("state_key", "previous_state_keys")
    @classmethod
    def _state_keys_long_enough(cls, value: str | list[str] | None) -> str | list[str] | None:
        if any(len(key) < 32 for key in ([value] if isinstance(value, str) else value or [])):
            raise ValueError("must be at least 32 characters, the same on every replica (openssl rand -base64 32)")
        return value

    @model_validator(mode="after")
    def _settings_that_need_one_another(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.previous_state_keys and self.state_key is None:
            raise ValueError("previous_state_keys needs state_key, the key that seals")
        return self


class S3Config(Settings):
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing_style: Literal["auto", "path", "virtual"] = "path"
    part_size: Size = 8 * 1024**2
    parts_in_flight: int = Field(3, ge=1, le=64)
    checksum_algorithm: Literal["crc32c", "crc32", "sha256", "crc64nvme", "none"] = "crc32c"
    content_md5: bool = False
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    orphan_ttl: float = Field(86400.0, ge=0)
    orphan_sweep_interval: float = Field(3600.0, gt=0)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url_shape(cls, value: str | None) -> str | None:
        """botocore's test, which it would make only once the server starts, and an http(s) scheme."""
        if value is None:
            return value
        problem = ValueError("must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:9000")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (a ValueError when it is no port number)
        except ValueError:
            raise problem from None
        if parts.scheme not in ("http", "https") or not (
            is_valid_endpoint_url(value) or is_valid_ipv6_endpoint_url(value)
        ):
            raise problem
        return value

    @field_validator("region")
    @classmethod
    def _region_shape(cls, value: str) -> str:
        """botocore's rule (InvalidRegionError once the server starts), which lets "" through."""
        problem = ValueError("must be a region name such as us-east-1: letters, digits and -")
        if not value:
            raise problem
        try:
            validate_region_name(value)
        except ValueError:
            raise problem from None
        return value

    @field_validator("checksum_algorithm")
    @classmethod
    def _computable(cls, value: str) -> str:
        if value == "crc64nvme" and value not in HASHES:
            raise ValueError(
                "crc64nvme needs the awscrt package, which is not installed: pip install 'aiouploader[crt]'"
            )
        return value

    @field_validator("part_size")
    @classmethod
    def _part_size_in_s3_range(cls, value: int) -> int:
        if not MIN_PART_SIZE <= value <= MAX_PART_SIZE:
            raise ValueError("must be between 5MiB and 5GiB (the S3 part size limits)")
        return value


class UploadConfig(Settings):
    block_size: Size = 1024**2
    max_form_files: int = Field(100, ge=1)
    """File fields one multipart/form-data POST may hold (400 beyond)."""
    max_form_size: Size = 0
    """Bytes the files of one multipart/form-data POST may hold together (413 beyond, none stored); 0: no bound
    but each file's (size_limit bounds every file on its own)."""

    @field_validator("block_size")
    @classmethod
    def _block_size_sane(cls, value: int) -> int:
        if not 4096 <= value <= 64 * 1024**2:
            raise ValueError("must be between 4KiB and 64MiB")
        return value


class RouteConfig(Settings):
    path: str
    bucket: str = Field(min_length=3, max_length=63)
    """Length as S3's rule; characters as botocore's, laxer than AWS's own (other S3 stores accept more)."""
    prefix: str = ""
    plugins: list[str] = []
    plugin_settings: dict[str, dict[str, Any]] = {}
    allow_delete: bool = False
    form_keys: Literal["generated", "filename"] = "generated"
    if_none_match: bool = False
    """Write only where no object exists yet (S3 conditional write); else 412 ``precondition_failed``."""
    plugin_timeout: float = Field(30.0, gt=0)
    auth: list[Literal["token", "signed"]] = []
    """How clients prove they may use the route; empty: anyone who reaches it."""
    direct_upload: bool = False
    """Answer PUT with a 307 to a presigned S3 URL: bytes skip the proxy (no plugin may need them)."""
    direct_upload_expires: int = Field(300, ge=1, le=604800)
    resumable: bool = False
    """Serve tus 1.0.0 resumable uploads: ``POST {path}/`` with ``Tus-Resumable`` creates one."""
    resumable_expires: int = Field(86400, ge=1, le=604800)
    """Seconds a resumable upload may stay idle before it is aborted and removed."""
    cors: CorsConfig | None = None
    """Let pages from other origins use the route (preflights answered, headers exposed)."""
    s3_api_bucket: BucketName | None = None
    """The bucket this route is on the S3 API (``[s3_api]``)."""

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
            raise ValueError("must look like /uploads or /a/b: segments of letters, digits and ._~-")
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket_shape(cls, value: str) -> str:
        if not VALID_BUCKET.match(value):
            raise ValueError("must consist of letters, digits and .-_ only")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if value.startswith("/") or "\0" in value or len(value.encode()) > 512:
            raise ValueError("must not start with / or contain NUL, and stay under 512 bytes")
        if value.startswith(RESERVED):
            raise ValueError(f"must not start with {RESERVED}, where the server keeps its own objects")
        return value

    @model_validator(mode="after")
    def _direct_only_where_s3_can_keep_the_rules(self) -> RouteConfig:
        if self.direct_upload and self.if_none_match:
            raise ValueError(
                "direct_upload with if_none_match: a presigned URL can be used again to overwrite the object; "
                "send If-None-Match: * on each upload instead, which the presigned URL then requires"
            )
        return self

    @field_validator("plugins")
    @classmethod
    def _plugins_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names a plugin twice")
        return value

    @field_validator("plugin_settings")
    @classmethod
    def _settings_of_listed_plugins(
        cls, value: dict[str, dict[str, Any]], info: ValidationInfo
    ) -> dict[str, dict[str, Any]]:
        if "plugins" not in info.data:
            return value  # already refused
        plugins: list[str] = info.data["plugins"]
        for name in value:
            if name not in plugins:
                raise ValueError(
                    f"[routes.plugin_settings.{name}] is for a plugin this route does not list; "
                    f"its plugins: {', '.join(plugins) or 'none'}{did_you_mean(name, plugins)}"
                )
        return value


class Config(Settings):
    server: ServerConfig = ServerConfig()
    s3: S3Config = S3Config()
    upload: UploadConfig = UploadConfig()
    routes: list[RouteConfig] = Field(min_length=1)
    plugins: dict[str, dict[str, Any]] = {}
    auth: AuthConfig = AuthConfig()
    s3_api: S3ApiConfig | None = None

    @field_validator("routes")
    @classmethod
    def _paths_distinct(cls, value: list[RouteConfig]) -> list[RouteConfig]:
        config_routes.check_paths(value)
        return value

    def upload_memory(self, content_length: int | None = None) -> int:
        """The most one upload of ``content_length`` bytes (``None``: unknown) may hold in memory."""
        return upload_memory(self.s3.part_size, self.s3.parts_in_flight, self.upload.block_size, content_length)

    @model_validator(mode="after")
    def _credentials_for_the_routes(self) -> Config:
        config_routes.check_credentials(self)
        return self

    @model_validator(mode="after")
    def _s3_api_consistent(self) -> Config:
        check_s3_api(self)
        return self

    @model_validator(mode="after")
    def _room_for_an_upload(self) -> Config:
        if self.server.max_buffered < (bound := self.upload_memory()):
            raise ValueError(
                f"server.max_buffered: must hold at least one upload's buffers, s3.part_size x "
                f"(s3.parts_in_flight + 1) + upload.block_size = {bound} bytes; "
                "below that every upload is refused"
            )
        return self

    def overlapping_routes(self) -> list[tuple[RouteConfig, RouteConfig, list[str]]]:
        """Pairs of routes that reach the same objects, with the rules they differ in."""
        return config_routes.overlapping_routes(self)

    @model_validator(mode="after")
    def _routes_apart(self) -> Config:
        config_routes.check_apart(self)
        return self

    def warnings(self) -> list[str]:
        """What start-up lets through but an operator should hear of."""
        return config_routes.overlap_warnings(self)

    def plugin_settings(self, route: RouteConfig, name: str) -> dict[str, Any]:
        """The settings of plugin ``name`` on ``route``: the defaults, then the route's overrides."""
        return {**self.plugins.get(name, {}), **route.plugin_settings.get(name, {})}


def validate(data: Mapping[str, Any]) -> Config:
    try:
        return parse_settings(Config, data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
