"""Byte sizes written the way people write them: ``"8MiB"``, ``"100MB"``, ``1024``."""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+)(?:\.(\d+))?\s*([a-zA-Z]*)\s*")
MAX_SIZE = 2**63 - 1
"""The largest size anything here accepts (8 EiB): far above S3's, small enough for every integer it meets."""
_TOO_LARGE = "too large: a size can be at most 8EiB"


def parse_size(value: object) -> int:
    """Return the number of bytes ``value`` stands for; ValueError when it is no size."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 8MiB, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        if value > MAX_SIZE:
            raise ValueError(_TOO_LARGE)
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match and match.group(3).lower() in _UNITS:
            whole, fraction, unit = match.group(1).lstrip("0"), match.group(2) or "", match.group(3).lower()
            if len(whole) > len(str(MAX_SIZE)):
                raise ValueError(_TOO_LARGE)
            # Exact arithmetic: a float turns 400 digits into inf. 60 decimals are more than any unit needs.
            size = int(Fraction(f"{whole or 0}.{fraction[:60] or 0}") * _UNITS[unit])
            if size > MAX_SIZE:
                raise ValueError(_TOO_LARGE)
            return size
    raise ValueError(f"expected a size such as 8MiB or 100MB, got {value!r}")


def format_size(size: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _UNITS[unit.lower()]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
