"""The address a listener binds to: an IP address or a host name."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def listen_host(value: str) -> str:
    """``value``, if it is an IP address or a host name."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOST_NAME.fullmatch(value):
            raise ValueError("must be an IP address (0.0.0.0 for every interface) or a host name") from None
    return value


Host = Annotated[str, AfterValidator(listen_host)]
