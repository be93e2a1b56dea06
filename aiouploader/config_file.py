"""Where the configuration comes from: a TOML file, overridden by ``AIOUPLOADER_<SECTION>__<KEY>`` variables."""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, validate

ENV_PREFIX = "AIOUPLOADER_"


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


def read(path: str | Path) -> dict[str, Any]:
    """The settings in the TOML file at ``path``, not yet validated."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def load(
    path: str | Path | None,
    environ: Mapping[str, str] = os.environ,
    *,
    default: Mapping[str, Any] | None = None,
    server: Mapping[str, Any] | None = None,
) -> Config:
    """Read ``path`` (or ``$AIOUPLOADER_CONFIG``; else ``default``), apply the environment, validate.

    ``server`` holds command-line overrides of ``[server]`` settings: they win
    over the file and the environment, and are validated the same way.
    """
    path = path or environ.get("AIOUPLOADER_CONFIG")
    data = read(path) if path else copy.deepcopy(dict(default or {}))
    data = apply_env(data, environ)
    if not path and "routes" not in data:
        raise ConfigError(
            "no configuration: give --config PATH or set AIOUPLOADER_CONFIG "
            "(conf/aiouploader.toml shows every setting; serve --dev needs none)"
        )
    if server and isinstance(data.setdefault("server", {}), dict):
        data["server"].update(server)
    return validate(data)
