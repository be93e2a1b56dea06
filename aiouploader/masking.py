"""A configuration fit to show (``check-config``): secrets replaced by ``***``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

MASK = "***"
_SECRET_NAME = re.compile(
    r"secret|token|passw|pwd|credential|cookie|authorization|private|^keys?$|(signing|api|hmac|access|shared|state)_?keys?(?!_id)"
    r"|^sha256$",  # the hash of a bearer token: enough to try guesses offline
    re.I,
)
_SECRET_PARAM = re.compile(r"token|secret|sig|pass|pwd|key|credential|auth|session|code", re.I)
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<authority>[^/?#]*)(?P<path>[^?#]*)(?P<query>\?[^#]*)?(?P<fragment>#.*)?",
    re.S,
)
_PARAM = re.compile(r"(?P<start>^[?#]|[&;])(?P<name>[^=&;]*)=(?P<value>[^&;]*)")


def masked(data: Mapping[str, Any]) -> dict[str, Any]:
    """A dumped :class:`Config` fit to show: every value under a secret-named setting
    (``auth.signing_keys``, ``auth.tokens[*].sha256``, ``s3_api.credentials[*].secret_access_key``, a
    plugin's ``token``) as ``***``, and in every URL the password and the values of query parameters named
    like secrets. An ``access_key_id`` names a key without being one: it is shown.

    The keys of ``[plugins]`` and ``[routes.plugin_settings]`` are plugin names, not settings.
    """
    shown: dict[str, Any] = {}
    for key, value in data.items():
        if key == "plugins":
            shown[key] = _masked_plugin_tables(value)
        elif key == "routes":
            shown[key] = [
                {k: _masked_plugin_tables(v) if k == "plugin_settings" else _masked(v, k) for k, v in route.items()}
                for route in value
            ]
        else:
            shown[key] = _masked(value, key)
    return shown


def _masked_plugin_tables(tables: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _masked(settings) for name, settings in tables.items()}


def _masked(value: Any, name: str = "", secret: bool = False) -> Any:
    secret = secret or bool(_SECRET_NAME.search(name))
    if isinstance(value, dict):
        return {key: _masked(item, key, secret) for key, item in value.items()}
    if isinstance(value, list):
        # The tables of an array (auth.tokens) are records whose fields have names of their own.
        return [_masked(item, "", secret and not isinstance(item, dict)) for item in value]
    if secret and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return _masked_url(value)
    return value


def _masked_url(text: str) -> str:
    url = _URL.fullmatch(text)
    if url is None:
        return text
    userinfo, at, host = url["authority"].rpartition("@")
    if at and ":" in userinfo:
        userinfo = f"{userinfo.partition(':')[0]}:{MASK}"
    query, fragment = (_masked_params(url[part] or "") for part in ("query", "fragment"))
    return f"{url['scheme']}{userinfo}{at}{host}{url['path']}{query}{fragment}"


def _masked_params(params: str) -> str:
    return _PARAM.sub(
        lambda param: (
            f"{param['start']}{param['name']}={MASK}"
            if param["value"] and _SECRET_PARAM.search(unquote(param["name"]))
            else param[0]
        ),
        params,
    )
