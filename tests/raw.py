"""Raw connections to the server, for tests that write requests byte by byte."""

from __future__ import annotations

import asyncio
import contextlib


async def closed(writer: asyncio.StreamWriter) -> None:
    """Close a raw connection and wait for its socket to close, rather than leave that to a loop that may be gone."""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
