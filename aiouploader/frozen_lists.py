"""frozenlist without its C++ extension in the server: the extension loads libstdc++ (about 0.9 MiB resident).

aiohttp keeps its signals and middlewares in frozenlist's ``FrozenList``, which
a request reads a few times; the pure-Python class (a list behind a frozen
flag, iterated as a list) costs nothing there that a request would notice.
"""

from __future__ import annotations

import sys


def keep_extension_out() -> None:
    """Import frozenlist as if its extension were not built, unless frozenlist is already imported."""
    if "frozenlist" in sys.modules:
        return
    sys.modules["frozenlist._frozenlist"] = None  # type: ignore[assignment]  # its import raises ImportError
    try:
        import frozenlist  # noqa: F401
    finally:
        del sys.modules["frozenlist._frozenlist"]
